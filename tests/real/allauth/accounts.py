"""Creates the test accounts once: `plain@example.com` (password only) and `totp@example.com`
(password and an activated TOTP authenticator, its secret written to `totp-secret`).

Run with `python manage.py shell -c "import accounts; accounts.main()"` in this directory.
"""

import os
from pathlib import Path

PASSWORD = "correct horse battery staple"


def main():
    from allauth.account.models import EmailAddress
    from allauth.mfa.models import Authenticator
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
    from django.contrib.auth import get_user_model

    state = Path(os.environ["ALLAUTH_STATE_DIR"])
    User = get_user_model()
    for name in ["plain", "totp"]:
        email = f"{name}@example.com"
        user, _ = User.objects.get_or_create(username=name, defaults={"email": email})
        user.email = email
        user.set_password(PASSWORD)
        user.save()
        EmailAddress.objects.update_or_create(
            user=user, email=email, defaults={"verified": True, "primary": True}
        )
    totp_user = User.objects.get(username="totp")
    secret_file = state / "totp-secret"
    if not secret_file.exists() or not Authenticator.objects.filter(
        user=totp_user, type=Authenticator.Type.TOTP
    ).exists():
        Authenticator.objects.filter(user=totp_user).delete()
        secret = generate_totp_secret()
        TOTP.activate(totp_user, secret)
        secret_file.write_text(secret + "\n")
