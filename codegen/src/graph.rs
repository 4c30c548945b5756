//! The step graph of a flow: where each outcome leads, which steps a run can reach, loops that
//! never pause for the user, and which values are defined on every path into a step.
//!
//! The checks report on this graph; the emitter uses the same answers (targets, session reads),
//! so the two cannot disagree about what a flow does.

use crate::model::*;
use std::collections::BTreeSet;

/// Where an outcome leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Step(usize),
    Complete,
    Fail,
}

/// One outcome of one step, and where it leads.
#[derive(Debug, Clone, Copy)]
pub struct Edge {
    pub step: usize,
    pub outcome: usize,
    pub target: Target,
    /// The outcome prompts: the run pauses for the user before the target runs.
    pub pauses: bool,
}

/// The index of the step `r` names.
pub fn resolve(flow: &Flow, r: &StepRef) -> Option<usize> {
    match r {
        StepRef::Index(i) => (*i < flow.steps.len()).then_some(*i),
        StepRef::Id(id) => flow
            .steps
            .iter()
            .position(|s| s.id.as_ref().is_some_and(|x| &x.v == id)),
    }
}

/// Where outcome `o` of step `i` leads; `None` when `next` names no step (reported elsewhere).
pub fn target(flow: &Flow, i: usize, o: &Outcome) -> Option<Target> {
    Some(match &o.then {
        Then::Fail(_) => Target::Fail,
        Then::Complete(_) => Target::Complete,
        Then::Continue(Some(r)) => Target::Step(resolve(flow, &r.v)?),
        Then::Continue(None) if i + 1 < flow.steps.len() => Target::Step(i + 1),
        Then::Continue(None) => Target::Complete,
    })
}

/// Every outcome of every step, with its target.
pub fn edges(flow: &Flow) -> Vec<Edge> {
    let mut out = Vec::new();
    for (i, s) in flow.steps.iter().enumerate() {
        for (j, o) in s.outcomes.iter().enumerate() {
            if let Some(target) = target(flow, i, o) {
                out.push(Edge {
                    step: i,
                    outcome: j,
                    target,
                    pauses: o.prompt.is_some(),
                });
            }
        }
    }
    out
}

/// Which steps a run can reach from the first.
pub fn reachable(flow: &Flow, edges: &[Edge]) -> Vec<bool> {
    let mut seen = vec![false; flow.steps.len()];
    let mut todo = vec![0];
    while let Some(i) = todo.pop() {
        if i >= seen.len() || std::mem::replace(&mut seen[i], true) {
            continue;
        }
        todo.extend(
            edges
                .iter()
                .filter(|e| e.step == i)
                .filter_map(|e| match e.target {
                    Target::Step(t) => Some(t),
                    _ => None,
                }),
        );
    }
    seen
}

/// Which steps can run before step `i` in the same run: those a run reaches from the first
/// step and from which some path of outcomes leads to `i` (`i` itself when it is on a loop).
pub fn leads_to(flow: &Flow, edges: &[Edge], i: usize) -> Vec<bool> {
    let reach = reachable(flow, edges);
    let mut seen = vec![false; flow.steps.len()];
    let mut todo = vec![i];
    while let Some(t) = todo.pop() {
        for e in edges {
            if e.target == Target::Step(t)
                && reach.get(e.step) == Some(&true)
                && !std::mem::replace(&mut seen[e.step], true)
            {
                todo.push(e.step);
            }
        }
    }
    seen
}

/// Loops of steps that run one after another without pausing for the user: for each, the
/// edge that closes it and the steps on it, in order.
pub fn silent_cycles(flow: &Flow, edges: &[Edge]) -> Vec<(Edge, Vec<usize>)> {
    let next = |i: usize| -> Vec<Edge> {
        edges
            .iter()
            .filter(|e| e.step == i && !e.pauses && matches!(e.target, Target::Step(_)))
            .copied()
            .collect()
    };
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    let mut mark = vec![Mark::New; flow.steps.len()];
    let mut found = Vec::new();
    for root in 0..flow.steps.len() {
        if mark[root] != Mark::New {
            continue;
        }
        // An explicit stack of (step, its remaining edges), so deep graphs cannot overflow ours.
        let mut path: Vec<(usize, Vec<Edge>)> = vec![(root, next(root))];
        mark[root] = Mark::OnPath;
        while let Some((_, rest)) = path.last_mut() {
            let Some(e) = rest.pop() else {
                if let Some((done, _)) = path.pop() {
                    mark[done] = Mark::Done;
                }
                continue;
            };
            let Target::Step(t) = e.target else { continue };
            match mark[t] {
                Mark::New => {
                    mark[t] = Mark::OnPath;
                    path.push((t, next(t)));
                }
                Mark::OnPath => {
                    let from = path.iter().position(|(s, _)| *s == t).unwrap_or(0);
                    found.push((e, path[from..].iter().map(|(s, _)| *s).collect()));
                }
                Mark::Done => {}
            }
        }
    }
    found
}

/// What is certainly defined when a step starts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Defined {
    /// Flow inputs and prompted fields.
    pub inputs: BTreeSet<String>,
    /// Values extracted by earlier steps of this run.
    pub stored: BTreeSet<String>,
}

impl Defined {
    /// What the display fields of outcome `o` may use: what the step started with and what
    /// the outcome certainly keeps (an optional extract may keep nothing).
    pub fn shown(&self, o: &Outcome) -> Defined {
        let mut d = self.clone();
        d.stored.extend(o.kept().map(str::to_owned));
        d
    }
    /// What the next step may use after outcome `o`: also the fields its prompt asks for.
    pub fn after(&self, o: &Outcome) -> Defined {
        let mut d = self.shown(o);
        if let Some(p) = &o.prompt {
            d.inputs.extend(p.collected().map(|f| f.key.v.clone()));
        }
        d
    }
}

/// For each step, what is defined on every path that reaches it; `None` for a step no path
/// reaches. A must-analysis: a value counts only if every way in defines it.
pub fn defined(flow: &Flow, edges: &[Edge]) -> Vec<Option<Defined>> {
    let mut at: Vec<Option<Defined>> = vec![None; flow.steps.len()];
    if at.is_empty() {
        return at;
    }
    at[0] = Some(Defined {
        inputs: flow.inputs.iter().map(|f| f.key.v.clone()).collect(),
        stored: BTreeSet::new(),
    });
    // Sets only shrink once a step is reached, so this settles.
    let mut changed = true;
    while changed {
        changed = false;
        for e in edges {
            let Target::Step(t) = e.target else { continue };
            let Some(from) = &at[e.step] else { continue };
            let out = from.after(&flow.steps[e.step].outcomes[e.outcome]);
            let new = match &at[t] {
                None => out,
                Some(old) => Defined {
                    inputs: old.inputs.intersection(&out.inputs).cloned().collect(),
                    stored: old.stored.intersection(&out.stored).cloned().collect(),
                },
            };
            if at[t].as_ref() != Some(&new) {
                at[t] = Some(new);
                changed = true;
            }
        }
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(steps: &str) -> Flow {
        let src = format!(
            "provider: {{ id: t, name: T }}\ndefaults: {{ base_url: \"https://x.example\" }}\nauth:\n  flows:\n    - id: f\n      name: F\n      inputs: [ {{ key: user, label: U }} ]\n      steps:\n{steps}"
        );
        let (root, d) = crate::yaml::parse(&src);
        assert!(d.is_empty(), "{d:?}");
        let mut l = crate::lower::Lower::default();
        let p = l.provider(&root.unwrap()).unwrap();
        p.flows.into_iter().next().unwrap()
    }

    const LOOP: &str = "        - id: a\n          name: A\n          request: { method: POST, path: /a }\n          outcomes:\n            - when: { status: 200 }\n              extract: { t: \"$.t\" }\n              prompt: [ { key: otp, label: O } ]\n              next: b\n            - fail: nope\n        - id: b\n          name: B\n          request: { method: POST, path: /b }\n          outcomes:\n            - when: { status: 401 }\n              prompt: [ { key: otp, label: O } ]\n              next: b\n            - when: { status: 409 }\n              next: a\n            - complete: true\n";

    #[test]
    fn targets_follow_next_order_and_completion() {
        let f = flow(LOOP);
        let e = edges(&f);
        let t: Vec<_> = e.iter().map(|e| (e.step, e.target, e.pauses)).collect();
        assert_eq!(
            t,
            vec![
                (0, Target::Step(1), true),
                (0, Target::Fail, false),
                (1, Target::Step(1), true),
                (1, Target::Step(0), false),
                (1, Target::Complete, false),
            ]
        );
        assert_eq!(reachable(&f, &e), vec![true, true]);
        assert!(silent_cycles(&f, &e).is_empty(), "every loop pauses");
    }

    #[test]
    fn defined_is_what_every_path_defines() {
        let f = flow(LOOP);
        let d = defined(&f, &edges(&f));
        let b = d[1].as_ref().unwrap();
        assert!(b.stored.contains("t") && b.inputs.contains("otp") && b.inputs.contains("user"));
        let a = d[0].as_ref().unwrap();
        assert!(
            a.stored.is_empty(),
            "the first visit to `a` has extracted nothing"
        );
    }

    #[test]
    fn the_steps_before_one_are_those_with_a_path_to_it() {
        let f = flow(LOOP);
        let e = edges(&f);
        // `b` loops on itself and back to `a`: both can run before either.
        assert_eq!(leads_to(&f, &e, 0), vec![true, true]);
        assert_eq!(leads_to(&f, &e, 1), vec![true, true]);
        let f = flow("        - name: A\n          request: { method: POST, path: /a }\n        - name: B\n          request: { method: POST, path: /b }\n");
        let e = edges(&f);
        assert_eq!(leads_to(&f, &e, 0), vec![false, false]);
        assert_eq!(leads_to(&f, &e, 1), vec![true, false]);
    }

    #[test]
    fn a_loop_without_a_prompt_is_found() {
        let f = flow("        - id: a\n          name: A\n          request: { method: POST, path: /a }\n          outcomes:\n            - when: { status: 200 }\n              next: b\n            - fail: x\n        - id: b\n          name: B\n          request: { method: POST, path: /b }\n          outcomes:\n            - when: { status: 202 }\n              next: a\n            - complete: true\n");
        let e = edges(&f);
        let c = silent_cycles(&f, &e);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].1, vec![0, 1]);
    }
}
