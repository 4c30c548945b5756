//! Lowering `auth.check`: the provider's own word on whether a stored session still works.
//!
//! A check is a request and outcomes like a step's, so it is lowered to a flow of one step
//! named `check`, whose `valid: true` outcomes complete and whose `valid: false` outcomes fail
//! (clearing the session): the conditions, the JSONPaths, the pre-emption rule, samples, the
//! emitted request and `decide` functions are the ones steps have. Its own rules are here: every outcome
//! decides, and the cache lifetime is within bounds.

use super::{head, keys, Lower};
use crate::model::*;
use crate::yaml::{Kind, Node};

/// The shortest and the longest cache lifetime a check may declare, in seconds.
pub const CACHE_BOUNDS: (u64, u64) = (1, 3600);

impl Lower {
    pub(super) fn check(&mut self, node: &Node) -> Option<Check> {
        let m = self.map(node, "`check`", keys::CHECK)?;
        let request = self
            .required(&m, "request", "`check`")
            .and_then(|r| self.request(r));
        let outcomes = match self.required(&m, "outcomes", "`check`") {
            Some(o) => {
                let items = self.list(o, "`outcomes`");
                if items.is_empty() && (o.is_null() || matches!(o.kind, Kind::Seq(_))) {
                    self.err("empty-outcomes", head(o), "`outcomes` is empty")
                        .help = Some(
                        "say which answers mean the session works (`valid: true`) and which mean it ended (`valid: false`)".into(),
                    );
                }
                items.iter().filter_map(|n| self.check_outcome(n)).collect()
            }
            None => Vec::new(),
        };
        let cache = match self.required(&m, "cache", "`check`") {
            Some(c) => self.lifetime(c),
            None => None,
        };
        let unreachable = m.get("unreachable").and_then(|v| {
            self.choice(v, "`unreachable`", &[("valid", true), ("invalid", false)])
                .map(|b| S { v: b, span: v.span })
        });
        let samples = self.samples(&m);
        let span = head(node);
        let name = S {
            v: "check".to_string(),
            span,
        };
        Some(Check {
            flow: Flow {
                id: name.clone(),
                name: name.clone(),
                inputs: Vec::new(),
                steps: vec![Step {
                    id: None,
                    name,
                    request: request?,
                    error_message: None,
                    outcomes,
                    samples,
                    success_form: false,
                    span,
                }],
                span,
            },
            cache: cache?,
            unreachable,
            span,
        })
    }

    /// `{ when: {…}, valid: true|false, samples: […] }`.
    fn check_outcome(&mut self, node: &Node) -> Option<Outcome> {
        let m = self.map(node, "a check outcome", keys::CHECK_OUTCOME)?;
        let when = m
            .get("when")
            .map(|w| self.conditions(w, "`when`", true))
            .unwrap_or_default();
        let samples = self.samples(&m);
        let Some(v) = m.get("valid") else {
            self.err(
                "check-undecided",
                head(node),
                "this check outcome does not say whether the session is valid",
            )
            .help = Some(
                "every outcome of `check` decides: add `valid: true` (the session works) or `valid: false` (it ended; the stored session is cleared)".into(),
            );
            return None;
        };
        let valid = self.boolean(v, "`valid`")?;
        Some(Outcome {
            when,
            extract: Vec::new(),
            prompt: None,
            then: if valid {
                Then::Complete(v.span)
            } else {
                Then::Fail(Fail {
                    from: None,
                    message: None,
                    clear_session: true,
                    span: v.span,
                })
            },
            message: None,
            samples,
            span: head(node),
        })
    }

    /// A lifetime: whole seconds (`90`), or a number with `s`, `m` or `h` (`30s`, `5m`, `1h`),
    /// within `CACHE_BOUNDS`.
    fn lifetime(&mut self, node: &Node) -> Option<S<u64>> {
        let s = self.string(node, "`cache`")?;
        let text = s.v.trim();
        let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
            Some(i) => text.split_at(i),
            None => (text, "s"),
        };
        let scale = match unit {
            "s" => Some(1),
            "m" => Some(60),
            "h" => Some(3600),
            _ => None,
        };
        let secs = digits
            .parse::<u64>()
            .ok()
            .zip(scale)
            .and_then(|(n, k)| n.checked_mul(k));
        let (lo, hi) = CACHE_BOUNDS;
        match secs {
            Some(n) if (lo..=hi).contains(&n) => Some(S { v: n, span: s.span }),
            Some(_) => {
                self.err(
                    "check-cache-bounds",
                    s.span,
                    format!("a check's cache lifetime must be between {lo}s and {}m, found `{text}`", hi / 60),
                )
                .help = Some("`check` asks the provider at most once per lifetime and user; a few minutes keeps it cheap and still notices a revoked session: `cache: 5m`".into());
                None
            }
            None => {
                self.err(
                    "wrong-type",
                    s.span,
                    format!(
                        "`cache` must be a lifetime such as `30s`, `5m` or `1h`, found `{text}`"
                    ),
                )
                .help =
                    Some("whole seconds (`90`), or a number followed by `s`, `m` or `h`".into());
                None
            }
        }
    }
}
