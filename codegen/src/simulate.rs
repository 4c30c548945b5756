//! `otvi-codegen simulate`: runs a provider file's flows through the Rust this compiler emits
//! for it, against the file's response samples, with no network.
//!
//! The emitted modules and a `main` that holds the samples make a throwaway crate built
//! against the runtime with `cargo`; running it prints the runtime's simulation transcript
//! (`otvi_runtime::simulate`): each request a step would send, user values and secrets shown
//! as markers, and what each sample leads to. The shipped providers' simulation test calls the
//! same runtime function on the compiled-in providers, so both print the same text.

use crate::model::{Flow, Provider};
use quote::quote;
use std::ffi::OsString;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

/// One recorded answer to a step, as the simulation takes it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The index of the step it answers.
    pub step: usize,
    pub label: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Every sample of `flow`, step by step, each step's in file order.
pub fn answers(flow: &Flow) -> Vec<Recorded> {
    flow.steps
        .iter()
        .enumerate()
        .flat_map(|(i, step)| {
            let mut samples: Vec<_> = step.all_samples().map(|(_, s)| s).collect();
            samples.sort_by_key(|s| s.span.start);
            samples.into_iter().map(move |s| Recorded {
                step: i,
                label: s.label(),
                status: s.status.v,
                headers: s
                    .headers
                    .iter()
                    .map(|(n, v)| (n.v.clone(), v.v.clone()))
                    .collect(),
                body: s.body.clone(),
            })
        })
        .collect()
}

/// What a flow that reads the user's provider session may find there: every value any flow of
/// the provider keeps there (not those kept for one run), sorted.
pub fn session_keys(p: &Provider) -> Vec<String> {
    p.session_keys().into_iter().collect()
}

/// The flows of `p` named by `ids` (every flow, and the session check when the file has one,
/// when empty; `check` names the session check unless a flow has that id), or the unknown id.
pub fn select<'p>(p: &'p Provider, ids: &[String]) -> Result<Vec<&'p Flow>, String> {
    let check = p.check.as_ref().map(|c| &c.flow);
    if ids.is_empty() {
        return Ok(p.flows.iter().chain(check).collect());
    }
    ids.iter()
        .map(|id| {
            let found = p.flows.iter().find(|f| f.id.v == *id);
            found.or(check.filter(|_| id == "check")).ok_or_else(|| {
                let known: Vec<&str> = p
                    .flows
                    .iter()
                    .map(|f| f.id.v.as_str())
                    .chain(check.map(|_| "check (the session check)"))
                    .collect();
                format!(
                    "provider `{}` has no flow `{id}`; its flows: {}",
                    p.id.v,
                    known.join(", ")
                )
            })
        })
        .collect()
}

/// Where the throwaway crate finds the runtime and builds.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The `otvi-runtime` crate's directory.
    pub runtime: PathBuf,
    /// Cargo's target directory for the throwaway crates (kept between runs: the runtime is
    /// compiled once).
    pub target_dir: PathBuf,
    /// The `cargo` to run.
    pub cargo: OsString,
}

impl Setup {
    /// The runtime next to this compiler's sources, building under its workspace's
    /// `target/simulate`; `$CARGO` when cargo runs this program.
    pub fn beside_compiler() -> Setup {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        Setup {
            runtime: workspace.join("runtime"),
            target_dir: workspace.join("target").join("simulate"),
            cargo: std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()),
        }
    }
}

/// The throwaway crate for `flows` of `p` (compiled from `file`): `(path, content)` pairs
/// relative to its directory, and its package name, unique to its content.
pub fn harness(
    file: &str,
    p: &Provider,
    flows: &[&Flow],
    runtime: &Path,
) -> (String, Vec<(String, String)>) {
    let mut files: Vec<(String, String)> = crate::emit::emit_all(&[(file, p)])
        .into_iter()
        .map(|(name, text)| (format!("src/{name}"), text))
        .collect();
    let flows = flows.iter().map(|f| {
        let id = &f.id.v;
        let is_check = p.check.as_ref().is_some_and(|c| std::ptr::eq(&c.flow, *f));
        let def = if is_check {
            quote! { provider.check.expect("the session check is compiled").flow }
        } else {
            quote! { flow(#id) }
        };
        let answers = answers(f).into_iter().map(|r| {
            let (step, label, status) = (r.step, r.label, r.status);
            let names = r.headers.iter().map(|(n, _)| n);
            let values = r.headers.iter().map(|(_, v)| v);
            let body = proc_macro2::Literal::byte_string(&r.body);
            quote! { Answer::new(#step, #label, #status, &[#((#names, #values)),*], #body) }
        });
        quote! { (#def, vec![#(#answers),*]) }
    });
    let session = session_keys(p);
    let main = quote! {
        //! Prints the simulation of a provider file's flows against its samples.
        use otvi_runtime::simulate::{transcript, Answer};
        fn main() {
            let provider = otvi_simulation::PROVIDERS[0];
            let flow = |id: &str| provider.flow(id).expect("every flow is compiled");
            let flows = vec![#(#flows),*];
            print!("{}", transcript(provider, &flows, &[#(#session),*]));
        }
    };
    let main = prettyplease::unparse(&syn::parse2(main).expect("the simulation's main parses"));
    files.push(("src/main.rs".into(), main));
    let mut h = std::collections::hash_map::DefaultHasher::new();
    files.hash(&mut h);
    runtime.hash(&mut h);
    // The lock file `run` copies in: a dependency update makes another crate, never a stale
    // copy.
    std::fs::read(workspace_lock(runtime)).ok().hash(&mut h);
    let name = format!("otvi-simulation-{:016x}", h.finish());
    let manifest = format!(
        "[package]\nname = \"{name}\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n\
         [lib]\nname = \"otvi_simulation\"\npath = \"src/providers.rs\"\n\n\
         [dependencies]\notvi-runtime = {{ path = {} }}\n\n\
         [profile.dev]\ndebug = false\n\n\
         # Not part of any enclosing workspace.\n[workspace]\n",
        toml_string(&runtime.display().to_string())
    );
    files.push(("Cargo.toml".into(), manifest));
    (name, files)
}

/// The lock file of the workspace the runtime crate is in.
fn workspace_lock(runtime: &Path) -> PathBuf {
    runtime.parent().unwrap_or(runtime).join("Cargo.lock")
}

/// `s` as a TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Builds and runs the simulation of `flows` of `p`; returns its transcript. Cargo's progress
/// goes to this process's stderr.
pub fn run(file: &str, p: &Provider, flows: &[&Flow], build: &Setup) -> Result<String, String> {
    let runtime = build.runtime.canonicalize().map_err(|e| {
        format!(
            "the runtime crate is not at {}: {e} (pass --runtime DIR)",
            build.runtime.display()
        )
    })?;
    let (name, files) = harness(file, p, flows, &runtime);
    let dir = build.target_dir.join("crates").join(&name);
    std::fs::create_dir_all(dir.join("src"))
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for (path, text) in &files {
        let path = dir.join(path);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            std::fs::write(&path, text)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
    }
    // The runtime's workspace lock file: the same dependency versions as the server, and no
    // registry query.
    let (lock, to) = (workspace_lock(&runtime), dir.join("Cargo.lock"));
    if lock.is_file() && !to.exists() {
        std::fs::copy(&lock, &to).map_err(|e| format!("cannot copy {}: {e}", lock.display()))?;
    }
    let status = Command::new(&build.cargo)
        .arg("build")
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&build.target_dir)
        .status()
        .map_err(|e| format!("cannot run {}: {e}", build.cargo.to_string_lossy()))?;
    if !status.success() {
        return Err(format!("building the simulation failed ({status})"));
    }
    let bin = build
        .target_dir
        .join("debug")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let out = Command::new(&bin)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    if !out.status.success() {
        return Err(format!(
            "the simulation failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    String::from_utf8(out.stdout).map_err(|e| e.to_string())
}
