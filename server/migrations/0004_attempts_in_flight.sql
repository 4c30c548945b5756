-- Login attempts are reserved before the provider is asked: `in_flight` counts the attempts
-- reserved under a key and not yet settled, beside the failures counted in its window.
ALTER TABLE login_failures ADD COLUMN in_flight INTEGER NOT NULL DEFAULT 0;
