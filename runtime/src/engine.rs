//! Run-time semantics of flows: step order, remembered inputs, chained steps, extraction,
//! pending runs, completion, logout.

use crate::api::{ApiError, FieldOut, LoginResponse, NextStep};
use crate::def::{FlowDef, ProviderDef, StepDef};
use crate::jsonpath::stored_text;
use crate::request::{StepCx, StepError};
use crate::store::{PendingRun, Store, Values};
use crate::upstream::Upstream;
use std::time::{Duration, Instant};

/// The longest input value accepted.
pub const MAX_INPUT: usize = 4096;

/// What the engine needs from the server.
pub struct Engine<'a> {
    pub store: &'a Store,
    pub upstream: &'a Upstream,
    pub base_url: &'a str,
    pub pending_ttl: Duration,
}

/// The answer to a step that failed: HTTP 200, `success: false`.
fn failed(error: String) -> LoginResponse {
    LoginResponse {
        success: false,
        session_id: None,
        next_step: None,
        user_name: None,
        error: Some(error),
    }
}

fn fields(defs: &[crate::def::FieldDef]) -> Vec<FieldOut> {
    defs.iter()
        .map(|f| FieldOut {
            key: f.key.into(),
            label: f.label.into(),
            field_type: f.field_type.into(),
            required: f.required,
        })
        .collect()
}

/// Non-password values of `inputs` that the flow declares: what a pending run remembers.
fn remembered(flow: &FlowDef, inputs: &Values) -> Values {
    let all = flow
        .inputs
        .iter()
        .chain(flow.steps.iter().flat_map(|s| s.prompt.iter()));
    all.filter(|f| !f.is_password())
        .filter_map(|f| inputs.get(f.key).map(|v| (f.key.to_string(), v.clone())))
        .collect()
}

impl Engine<'_> {
    pub async fn login(
        &self,
        provider: &ProviderDef,
        owner: &str,
        flow: &'static FlowDef,
        step: usize,
        sent: Values,
    ) -> Result<LoginResponse, ApiError> {
        if step >= flow.steps.len() {
            return Err(ApiError::BadRequest(format!(
                "step {step} is out of range: flow `{}` has {} step{}",
                flow.id,
                flow.steps.len(),
                if flow.steps.len() == 1 { "" } else { "s" }
            )));
        }
        // At step 0 an older pending run is replaced by the next save, or deleted on
        // completion or failure, so it needs no query of its own here.
        let mut run = if step == 0 {
            PendingRun {
                flow_id: flow.id.into(),
                next_step: 0,
                inputs: Values::new(),
                extracted: Values::new(),
                expires_at: 0,
            }
        } else {
            match self.store.pending(owner, provider.id).await? {
                Some(r) if r.flow_id == flow.id && r.next_step == step => r,
                _ => {
                    return Err(ApiError::BadRequest(format!(
                        "step {step} of flow `{}` is not expected next; start again at step 0",
                        flow.id
                    )))
                }
            }
        };

        let mut inputs = std::mem::take(&mut run.inputs);
        for (k, v) in sent {
            if v.len() > MAX_INPUT {
                return Err(ApiError::BadRequest(format!(
                    "input `{k}` is longer than 4 KiB"
                )));
            }
            inputs.insert(k, v);
        }
        // Step 0 needs the flow's inputs; a later step the fields the previous step prompted
        // for. Earlier non-password inputs are remembered; a password a later step sends again
        // must be resent, and the step's own request building names it if it is not.
        let needed: &[crate::def::FieldDef] = match step {
            0 => flow.inputs,
            i => flow.steps[i - 1].prompt,
        };
        for f in needed {
            if f.required && inputs.get(f.key).is_none_or(|v| v.is_empty()) {
                return Err(ApiError::BadRequest(format!(
                    "missing required input `{}`",
                    f.key
                )));
            }
        }

        let mut stored = if flow.uses_session {
            self.store
                .session(owner, provider.id)
                .await?
                .unwrap_or_default()
        } else {
            Values::new()
        };
        stored.extend(run.extracted.iter().map(|(k, v)| (k.clone(), v.clone())));

        let mut i = step;
        loop {
            let def = &flow.steps[i];
            let outcome = self
                .run_step(provider, flow, i, def, &inputs, &stored)
                .await;
            let extracted = match outcome {
                Ok(x) => x,
                Err(e) if e.is_bad_request() => return Err(ApiError::BadRequest(e.to_string())),
                Err(e) => {
                    if i > 0 {
                        // Keep the run so the step can be retried (a mistyped OTP).
                        run.next_step = i;
                        run.inputs = remembered(flow, &inputs);
                        run.expires_at = Store::expiry(self.pending_ttl);
                        self.store.save_pending(owner, provider.id, &run).await?;
                    } else {
                        // A new step 0 discards any earlier pending run.
                        self.store.discard_pending(owner, provider.id).await?;
                    }
                    return Ok(failed(e.to_string()));
                }
            };
            for (k, v) in extracted {
                stored.insert(k.clone(), v.clone());
                run.extracted.insert(k, v);
            }
            if !def.prompt.is_empty() {
                run.next_step = i + 1;
                run.inputs = remembered(flow, &inputs);
                run.expires_at = Store::expiry(self.pending_ttl);
                self.store.save_pending(owner, provider.id, &run).await?;
                return Ok(LoginResponse {
                    success: false,
                    session_id: None,
                    next_step: Some(NextStep {
                        step_index: i + 1,
                        step_name: flow.steps[i + 1].name.into(),
                        fields: fields(def.prompt),
                    }),
                    user_name: None,
                    error: None,
                });
            }
            if i + 1 < flow.steps.len() {
                i += 1;
                continue;
            }
            let session = self
                .store
                .complete(owner, provider.id, &run.extracted)
                .await?;
            return Ok(LoginResponse {
                success: true,
                session_id: None,
                next_step: None,
                user_name: session.get("user_name").cloned(),
                error: None,
            });
        }
    }

    /// Sends one step and extracts its values.
    async fn run_step(
        &self,
        provider: &ProviderDef,
        flow: &FlowDef,
        index: usize,
        def: &StepDef,
        inputs: &Values,
        stored: &Values,
    ) -> Result<Values, StepError> {
        let cx = StepCx::new(self.base_url, inputs, stored);
        let out = (def.build)(&cx)?;
        let started = Instant::now();
        let reply = self.upstream.send(out).await;
        let status = reply.as_ref().map(|r| r.status).unwrap_or(0);
        tracing::info!(
            provider = provider.id,
            flow = flow.id,
            step = index,
            status,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "provider step"
        );
        let reply = reply?;
        let ok = match def.success_status {
            Some(s) => reply.status == s,
            None => (200..300).contains(&reply.status),
        };
        if !ok {
            return Err(StepError::Provider(format!(
                "the provider answered HTTP {}",
                reply.status
            )));
        }
        let mut out = Values::new();
        if def.extract.is_empty() {
            return Ok(out);
        }
        let json: serde_json::Value = serde_json::from_slice(&reply.body)
            .map_err(|_| StepError::Provider("the provider's answer is not JSON".into()))?;
        for e in def.extract {
            let v = e.path.first(&json).ok_or_else(|| {
                StepError::Provider(format!(
                    "the provider's answer has no value at `{}`",
                    e.path.as_str()
                ))
            })?;
            out.insert(e.key.to_string(), stored_text(v));
        }
        Ok(out)
    }

    /// Runs the provider's logout request (if any, and if a session exists), ignoring its
    /// failure, then deletes the session and any pending run.
    pub async fn logout(&self, provider: &ProviderDef, owner: &str) -> Result<(), ApiError> {
        if let Some(build) = provider.logout {
            if let Some(session) = self.store.session(owner, provider.id).await? {
                let none = Values::new();
                let cx = StepCx::new(self.base_url, &none, &session);
                match build(&cx) {
                    Ok(out) => {
                        let r = self.upstream.send(out).await;
                        tracing::info!(
                            provider = provider.id,
                            status = r.as_ref().map(|r| r.status).unwrap_or(0),
                            "provider logout"
                        );
                    }
                    Err(e) => {
                        tracing::warn!(provider = provider.id, error = %e, "logout request not sent")
                    }
                }
            }
        }
        self.store.logout(owner, provider.id).await?;
        Ok(())
    }
}
