//! Run-time semantics of flows: which step may run, remembered inputs, outcomes, extraction,
//! chained steps, prompts, pending runs, completion, failure, logout.
//!
//! The engine answers in its own terms (`Login`, `EngineError`); `api` turns them into the
//! seed's JSON and status codes.

use crate::metrics::Metrics;
use crate::store::{PendingRun, Store, StoreError, Values};
use crate::upstream::Upstream;
use otvi_runtime::def::{Choice, FieldDef, FieldType, FlowDef, OutcomeDef, ProviderDef, Then};
use otvi_runtime::request::{Json, StepCx, StepError};
use otvi_runtime::response::{is_web_link, Reply};
use otvi_runtime::secrets::Secrets;
use std::time::{Duration, Instant};

/// The longest input value accepted.
pub const MAX_INPUT: usize = 4096;

/// What the engine needs from the server.
pub struct Engine<'a> {
    pub store: &'a Store,
    pub upstream: &'a Upstream,
    pub base_url: &'a str,
    pub pending_ttl: Duration,
    pub secrets: &'a Secrets,
    pub metrics: &'a Metrics,
}

/// What a login request led to.
#[derive(Debug)]
pub enum Login {
    /// The run completed; its values are the provider session now.
    Complete { user_name: Option<String> },
    /// The run waits for the user: the client sends `step_index` next, with the fields asked.
    Prompt {
        step_index: usize,
        step_name: &'static str,
        fields: Vec<Shown>,
        message: Option<String>,
    },
    /// The step failed: a short message, never the provider's raw answer. `rejected` when the
    /// provider turned the attempt down (a `fail` outcome, or a 4xx that the `on_success` form
    /// does not match), not when it could not be asked, answered 5xx or 429, or answered
    /// something no outcome expected: only rejections count towards the brute-force limits.
    Failed { error: String, rejected: bool },
}

/// A prompt field as shown: display fields carry their rendered value.
#[derive(Debug)]
pub struct Shown {
    pub def: &'static FieldDef,
    pub value: Option<String>,
    /// `choice` fields: the options offered.
    pub options: Option<Vec<Choice>>,
}

/// Why a login request was refused before or instead of running.
#[derive(Debug)]
pub enum EngineError {
    /// The client's fault (HTTP 400).
    BadRequest(String),
    /// The session store is unreachable (HTTP 503).
    Store(StoreError),
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        EngineError::Store(e)
    }
}

/// Non-password values of `inputs` that the flow declares, but `forget`: what a pending run
/// remembers.
fn remembered(flow: &FlowDef, inputs: &Values, forget: &[&str]) -> Values {
    flow.remember
        .iter()
        .filter(|k| !forget.contains(k))
        .filter_map(|k| inputs.get(*k).map(|v| (k.to_string(), v.clone())))
        .collect()
}

/// An answer that says the provider, not the user, is at fault: a 5xx, or 429 (the provider
/// is rate-limiting us). It never counts towards the brute-force limits, whatever outcome it
/// selects.
fn provider_fault(status: u16) -> bool {
    status >= 500 || status == 429
}

/// The state of one login request as it runs its steps.
struct Run<'r> {
    owner: &'r str,
    provider: &'static ProviderDef,
    flow: &'static FlowDef,
    pending: PendingRun,
    inputs: Values,
    stored: Values,
}

impl Engine<'_> {
    pub async fn login(
        &self,
        provider: &'static ProviderDef,
        owner: &str,
        flow: &'static FlowDef,
        step: usize,
        sent: Values,
    ) -> Result<Login, EngineError> {
        if step >= flow.steps.len() {
            return Err(EngineError::BadRequest(format!(
                "step {step} is out of range: flow `{}` has {} step{}",
                flow.id,
                flow.steps.len(),
                if flow.steps.len() == 1 { "" } else { "s" }
            )));
        }
        // Step 0 starts a new run: an older pending run is replaced by the next save, or
        // deleted on completion or failure, so it needs no query of its own here.
        let mut pending = if step == 0 {
            PendingRun {
                flow_id: flow.id.into(),
                run_id: uuid::Uuid::new_v4().to_string(),
                ..PendingRun::default()
            }
        } else {
            match self.store.pending(owner, provider.id).await? {
                Some(r) if r.flow_id == flow.id && expected(flow, &r) == Some(step) => r,
                _ => {
                    return Err(EngineError::BadRequest(format!(
                        "step {step} of flow `{}` is not expected next; start again at step 0",
                        flow.id
                    )))
                }
            }
        };

        let sent_keys: Vec<String> = sent.keys().cloned().collect();
        let mut inputs = std::mem::take(&mut pending.inputs);
        for (k, v) in sent {
            if v.len() > MAX_INPUT {
                return Err(EngineError::BadRequest(format!(
                    "input `{k}` is longer than 4 KiB"
                )));
            }
            inputs.insert(k, v);
        }
        // Step 0 needs the flow's inputs; a later step the fields the last prompt asked for.
        // Earlier non-password inputs are remembered; a password a later step sends again
        // must be resent, and the step's own request building names it if it is not.
        let needed: Vec<&str> = match step {
            0 => flow
                .inputs
                .iter()
                .filter(|f| f.required)
                .map(|f| f.key)
                .collect(),
            _ => pending.awaiting.iter().map(String::as_str).collect(),
        };
        if let Some(k) = needed
            .iter()
            .find(|k| inputs.get(**k).is_none_or(|v| v.is_empty()))
        {
            return Err(EngineError::BadRequest(format!(
                "missing required input `{k}`"
            )));
        }
        // A `number` field's value, when given, is a number, whatever the step does with it.
        if let Some(f) = flow
            .fields()
            .filter(|f| f.field_type == FieldType::Number)
            .find(|f| {
                inputs
                    .get(f.key)
                    .is_some_and(|v| !v.is_empty() && Json::number(v, f.key).is_err())
            })
        {
            return Err(EngineError::BadRequest(format!(
                "input `{}` must be a number",
                f.key
            )));
        }

        let mut stored = if flow.uses_session {
            self.store
                .session(owner, provider.id)
                .await?
                .unwrap_or_default()
        } else {
            Values::new()
        };
        stored.extend(
            pending
                .extracted
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        // A `choice` field's value, when this request sends it, is one of the options its
        // prompt offered (prompts that ask for one key offer the same lists: the compiler
        // checks).
        if let Some(f) = flow
            .fields()
            .filter(|f| f.field_type == FieldType::Choice && sent_keys.iter().any(|k| k == f.key))
            .find(|f| {
                let offered = f
                    .options
                    .and_then(|c| c.offered(&stored))
                    .unwrap_or_default();
                inputs
                    .get(f.key)
                    .is_some_and(|v| !v.is_empty() && !offered.iter().any(|o| o.value == *v))
            })
        {
            return Err(EngineError::BadRequest(format!(
                "input `{}` must be one of the options offered",
                f.key
            )));
        }
        let mut run = Run {
            owner,
            provider,
            flow,
            pending,
            inputs,
            stored,
        };
        self.run_from(&mut run, step).await
    }

    /// Runs steps from `first` until one pauses, completes or fails. The compiler rejects
    /// loops that never pause, so a run passes each step at most once here; the bound only
    /// guards against a bug.
    async fn run_from(&self, run: &mut Run<'_>, first: usize) -> Result<Login, EngineError> {
        let flow = run.flow;
        let mut i = first;
        for _ in 0..=flow.steps.len() {
            let def = &flow.steps[i];
            let reply = match self.send(run, i).await {
                Ok(r) => r,
                Err(e) if e.is_bad_request() => return Err(EngineError::BadRequest(e.to_string())),
                Err(e) => return self.fail(run, (i, first), e.to_string(), false).await,
            };
            let outcome = (def.decide)(&reply);
            tracing::debug!(
                provider = run.provider.id,
                flow = flow.id,
                step = i,
                outcome = outcome.map_or("none", |o| o.at),
                "step outcome"
            );
            let Some(o) = outcome else {
                let msg = def.failure(&reply, None, self.secrets);
                // Only the `on_success` form says what a failure looks like (any answer its
                // success does not match); an answer that no outcome of `outcomes:` expected
                // is not known to be the user's failure.
                let rejected = def.success_form && (400..500).contains(&reply.status);
                let rejected = rejected && !provider_fault(reply.status);
                return self.fail(run, (i, first), msg, rejected).await;
            };
            for e in o.extract {
                match e.read(&reply) {
                    Ok(Some(v)) => {
                        // A provider that echoes a secret does not get it stored.
                        let v = self.secrets.redact(v);
                        run.stored.insert(e.key.to_string(), v.clone());
                        run.pending.extracted.insert(e.key.to_string(), v);
                    }
                    Ok(None) => {}
                    Err(err) => return self.fail(run, (i, first), err.to_string(), false).await,
                }
            }
            match &o.then {
                Then::Fail(f) => {
                    let msg = def.failure(&reply, Some(o), self.secrets);
                    let rejected = !provider_fault(reply.status);
                    if f.clear_session {
                        // The provider revoked the session: forget it and the run.
                        self.store.logout(run.owner, run.provider.id).await?;
                        return Ok(Login::Failed {
                            error: msg,
                            rejected,
                        });
                    }
                    return self.fail(run, (i, first), msg, rejected).await;
                }
                Then::Complete => {
                    // Values kept for the run only end with it, never in the session.
                    let kept: Values = run
                        .flow
                        .session_values(&run.pending.extracted)
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    // The session it replaces is logged out at the provider once the new
                    // one is written: a write that fails leaves the user their old session.
                    let replaced = self.replaced(run, &kept).await;
                    let session = self
                        .store
                        .complete(run.owner, run.provider.id, &kept)
                        .await?;
                    if let Some(old) = replaced {
                        tracing::info!(
                            provider = run.provider.id,
                            flow = run.flow.id,
                            "logging out the provider session a new login replaced"
                        );
                        self.provider_logout(run.provider, &old).await;
                    }
                    return Ok(Login::Complete {
                        user_name: session.get("user_name").cloned(),
                    });
                }
                Then::Step(j) if o.prompt.is_empty() => i = *j,
                Then::Step(j) => return self.pause(run, (i, first), *j, o, &reply).await,
            }
        }
        self.store
            .discard_pending(run.owner, run.provider.id)
            .await?;
        Ok(Login::Failed {
            error: "the flow ran too many steps without pausing".into(),
            rejected: false,
        })
    }

    /// What a step's templates may read in this run, as it stands.
    fn cx<'r>(&'r self, run: &'r Run<'_>) -> StepCx<'r> {
        StepCx::new(
            self.base_url,
            &run.inputs,
            &run.stored,
            self.secrets,
            &run.pending.run_id,
        )
    }

    /// Builds and sends step `i`'s request.
    async fn send(&self, run: &Run<'_>, i: usize) -> Result<Reply, StepError> {
        let cx = self.cx(run);
        let def = &run.flow.steps[i];
        let mut out = (def.build)(&cx)?;
        out.follow_redirects = def.follow_redirects;
        let started = Instant::now();
        let reply = self.upstream.send(out).await;
        self.metrics
            .provider_request(run.provider.id, started.elapsed());
        tracing::debug!(
            provider = run.provider.id,
            flow = run.flow.id,
            step = i,
            status = reply.as_ref().map(|r| r.status).unwrap_or(0),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "provider step"
        );
        reply
    }

    /// Pauses the run before step `next` for the fields that outcome `o` of step `i` asks for
    /// (on the provider's answer `reply`).
    async fn pause(
        &self,
        run: &mut Run<'_>,
        (i, first): (usize, usize),
        next: usize,
        o: &'static OutcomeDef,
        reply: &Reply,
    ) -> Result<Login, EngineError> {
        let fields = match self.show(run, o) {
            Ok(f) => f,
            Err(msg) => return self.fail(run, (i, first), msg, false).await,
        };
        let asked: Vec<&str> = o
            .prompt
            .iter()
            .filter(|f| !f.is_display())
            .map(|f| f.key)
            .collect();
        let pending = &mut run.pending;
        pending.next_step = next;
        pending.next_step_id = run.flow.steps[next].id.into();
        pending.awaiting = o
            .prompt
            .iter()
            .filter(|f| f.required && !f.is_display())
            .map(|f| f.key.to_string())
            .collect();
        // What the prompt asks for is asked anew: an earlier answer (a rejected code) is not
        // reused.
        pending.inputs = remembered(run.flow, &run.inputs, &asked);
        pending.expires_at = Store::expiry(self.pending_ttl);
        self.store
            .save_pending(run.owner, run.provider.id, pending)
            .await?;
        Ok(Login::Prompt {
            step_index: next,
            step_name: run.flow.steps[next].name,
            fields,
            message: o.prompt_message(reply, self.secrets),
        })
    }

    /// The fields of `o`'s prompt as shown: display values rendered from what the run knows
    /// now (the step's own extraction included), secrets redacted, links checked.
    fn show(&self, run: &Run<'_>, o: &'static OutcomeDef) -> Result<Vec<Shown>, String> {
        let cx = self.cx(run);
        let mut fields = Vec::with_capacity(o.prompt.len());
        for f in o.prompt {
            let value = match f.value {
                None => None,
                Some(render) => {
                    let v = render(&cx).map_err(|e| e.to_string())?;
                    if f.field_type == FieldType::Link && !is_web_link(&v) {
                        return Err(format!(
                            "the provider's link for `{}` is not an http(s) URL",
                            f.key
                        ));
                    }
                    Some(self.secrets.redact(v))
                }
            };
            let options = match &f.options {
                None => None,
                Some(c) => {
                    let mut offered = c.offered(&run.stored).ok_or_else(|| {
                        format!(
                            "the provider's answer holds no list of options for `{}`",
                            f.key
                        )
                    })?;
                    for o in &mut offered {
                        o.value = self.secrets.redact(std::mem::take(&mut o.value));
                        o.label = self.secrets.redact(std::mem::take(&mut o.label));
                    }
                    Some(offered)
                }
            };
            fields.push(Shown {
                def: f,
                value,
                options,
            });
        }
        Ok(fields)
    }

    /// Step `i` failed. A run that started at step 0 and failed there is gone; otherwise it is
    /// kept so the step can be retried (a mistyped code), with the fields the last prompt
    /// asked for required again when `i` is the step the request resumed at.
    async fn fail(
        &self,
        run: &mut Run<'_>,
        (i, resumed_at): (usize, usize),
        error: String,
        rejected: bool,
    ) -> Result<Login, EngineError> {
        if i == 0 {
            self.store
                .discard_pending(run.owner, run.provider.id)
                .await?;
            return Ok(Login::Failed { error, rejected });
        }
        let pending = &mut run.pending;
        if i != resumed_at {
            pending.awaiting.clear();
        }
        let forget: Vec<&str> = pending.awaiting.iter().map(String::as_str).collect();
        pending.inputs = remembered(run.flow, &run.inputs, &forget);
        pending.next_step = i;
        pending.next_step_id = run.flow.steps[i].id.into();
        pending.expires_at = Store::expiry(self.pending_ttl);
        self.store
            .save_pending(run.owner, run.provider.id, pending)
            .await?;
        Ok(Login::Failed { error, rejected })
    }

    /// Runs the provider's logout request (if any, and if a session exists), ignoring its
    /// failure, then deletes the session and any pending run.
    pub async fn logout(&self, provider: &ProviderDef, owner: &str) -> Result<(), StoreError> {
        if provider.logout.is_some() {
            if let Some(session) = self.store.session(owner, provider.id).await? {
                self.provider_logout(provider, &session).await;
            }
        }
        self.store.logout(owner, provider.id).await
    }

    /// Whether `owner`'s session with `provider` is valid: stored, and, for a provider with
    /// `auth.check`, still working at the provider (asked at most once per cache lifetime).
    /// The provider saying it ended clears the session; a provider that cannot say (not
    /// reached, 5xx or 429, an answer no outcome takes) gets the file's `unreachable` answer,
    /// and the session is kept.
    pub async fn check(&self, provider: &ProviderDef, owner: &str) -> Result<bool, StoreError> {
        let Some(check) = provider.check else {
            return self.store.has_session(owner, provider.id).await;
        };
        if !self.store.has_session(owner, provider.id).await? {
            return Ok(false);
        }
        if self.store.check_fresh(owner, provider.id) {
            return Ok(true);
        }
        let Some((sealed, session)) = self.store.session_sealed(owner, provider.id).await? else {
            return Ok(false);
        };
        let step = &check.flow.steps[0];
        let none = Values::new();
        let cx = StepCx::new(self.base_url, &none, &session, self.secrets, "");
        let reply = match (step.build)(&cx) {
            Ok(mut out) => {
                out.follow_redirects = step.follow_redirects;
                let started = Instant::now();
                let r = self.upstream.send(out).await;
                self.metrics
                    .provider_request(provider.id, started.elapsed());
                r
            }
            Err(e) => Err(e),
        };
        let verdict = reply.as_ref().ok().and_then(|r| check.verdict(r));
        match verdict {
            Some(true) => {
                let ttl = Duration::from_secs(check.cache_secs);
                self.store.check_valid_for(owner, provider.id, ttl);
                Ok(true)
            }
            Some(false) => {
                tracing::info!(
                    provider = provider.id,
                    "the provider ended the session; it is cleared"
                );
                // Only the session that was checked: one a new login wrote meanwhile stays,
                // and so does a pending run (a sign-in under way is not what ended).
                self.store.check_forget(owner, provider.id);
                self.store
                    .forget_session(owner, provider.id, &sealed)
                    .await?;
                Ok(false)
            }
            None => {
                tracing::warn!(
                    provider = provider.id,
                    status = reply.as_ref().map(|r| r.status).unwrap_or(0),
                    answer = check.unreachable_valid,
                    "the provider could not say whether the session works"
                );
                Ok(check.unreachable_valid)
            }
        }
    }

    /// The provider session that a completed run's values `kept` replace, when it is to be
    /// logged out at the provider once they are written (best effort, logged, never failing
    /// the login). None when the provider file opts out (`logout.on_relogin: false`), when
    /// the flow reads the session (it continues that session, as a refresh does), when there
    /// is none, or when what logout reads is unchanged (the provider answered with the same
    /// session).
    async fn replaced(&self, run: &Run<'_>, kept: &Values) -> Option<Values> {
        let provider = run.provider;
        if !provider.logout_on_relogin || provider.logout.is_none() || run.flow.uses_session {
            return None;
        }
        let old = match self.store.session(run.owner, provider.id).await {
            Ok(old) => old?,
            Err(e) => {
                tracing::warn!(provider = provider.id, error = %e, "the replaced session could not be read to log it out");
                return None;
            }
        };
        let same = provider
            .logout_reads
            .iter()
            .all(|k| kept.get(*k).is_none_or(|v| old.get(*k) == Some(v)));
        (!same).then_some(old)
    }

    /// Sends the provider's logout request for `session`; its answer or failure is logged,
    /// never returned.
    async fn provider_logout(&self, provider: &ProviderDef, session: &Values) {
        let Some(build) = provider.logout else {
            return;
        };
        let none = Values::new();
        let cx = StepCx::new(self.base_url, &none, session, self.secrets, "");
        match build(&cx) {
            Ok(out) => {
                let started = Instant::now();
                let r = self.upstream.send(out).await;
                self.metrics
                    .provider_request(provider.id, started.elapsed());
                match r {
                    Ok(r) => tracing::debug!(
                        provider = provider.id,
                        status = r.status,
                        "provider logout"
                    ),
                    Err(e) => {
                        tracing::warn!(provider = provider.id, error = %e, "provider logout failed")
                    }
                }
            }
            Err(e) => {
                tracing::warn!(provider = provider.id, error = %e, "logout request not sent")
            }
        }
    }
}

/// The index of the step a pending run expects next: found by id, so a provider file that
/// changed between two requests cannot resume the run at a different step.
fn expected(flow: &FlowDef, run: &PendingRun) -> Option<usize> {
    if run.next_step_id.is_empty() {
        // Saved before runs remembered ids.
        return Some(run.next_step);
    }
    flow.step_index(&run.next_step_id)
}
