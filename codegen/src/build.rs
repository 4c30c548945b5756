//! Compiling a crate's provider files from its `build.rs`, as prost-build compiles `.proto`
//! files: the generated modules go to `OUT_DIR` and are `include!`d from there
//! (`otvi_runtime::include_providers!()`); a broken provider file fails `cargo build` with the
//! checker's diagnostics; with an audit copy, a stale checked-in copy fails it too.

use crate::diag::{FileReport, Format, Severity};
use crate::{collect_files, emit, Options};
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// A build script's compilation of provider files.
///
/// ```no_run
/// // build.rs
/// fn main() -> Result<(), otvi_codegen::BuildError> {
///     otvi_codegen::Build::new()
///         .providers("providers")
///         .audit_copy("generated")
///         .compile()
/// }
/// ```
///
/// and in the crate:
///
/// ```ignore
/// mod providers {
///     otvi_runtime::include_providers!();
/// }
/// // providers::PROVIDERS: every compiled provider; providers::acme: one of them.
/// ```
///
/// `compile` prints `cargo::rerun-if-changed` for every provider file, directory and sample
/// file it reads (and the audit copy), so cargo runs the script again exactly when one of them
/// changes; each warning becomes a `cargo::warning`, and every diagnostic is printed on stderr
/// as `otvi-codegen check` prints it.
#[derive(Debug, Clone, Default)]
#[must_use = "nothing is compiled until `compile` is called"]
pub struct Build {
    providers: Vec<PathBuf>,
    audit_copy: Option<PathBuf>,
    out_dir: Option<PathBuf>,
    require_samples: bool,
    deny_warnings: bool,
}

/// Why `Build::compile` failed. Its `Debug` is the message, so a `build.rs` whose `main`
/// returns `Result<(), BuildError>` fails with it.
pub enum BuildError {
    /// A provider file has errors (printed above, as `otvi-codegen check` prints them).
    Invalid {
        errors: usize,
        /// The command that shows them again.
        command: String,
    },
    /// The checked-in audit copy is not what was compiled.
    StaleAuditCopy {
        dir: PathBuf,
        /// The files that differ, are missing or are extra.
        files: Vec<String>,
        /// The command that refreshes the copy.
        command: String,
    },
    /// Reading or writing a file failed.
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// No provider file was found, or no place to write to.
    Setup(String),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Invalid { errors, command } => write!(
                f,
                "{errors} error{} in provider files; run `{command}` to see them",
                if *errors == 1 { "" } else { "s" }
            ),
            BuildError::StaleAuditCopy {
                dir,
                files,
                command,
            } => write!(
                f,
                "the audit copy in {} is not the code being compiled ({}); refresh it with \
                 `{command}` and commit it",
                dir.display(),
                files.join(", ")
            ),
            BuildError::Io { path, error } => write!(f, "{}: {error}", path.display()),
            BuildError::Setup(m) => f.write_str(m),
        }
    }
}

impl fmt::Debug for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for BuildError {}

/// The directory, under `OUT_DIR`, that `compile` writes and `include_providers!` reads.
pub const OUT_SUBDIR: &str = "otvi";

impl Build {
    pub fn new() -> Build {
        Build::default()
    }

    /// A provider file, or a directory of them (`*.yaml`, `*.yml`, not recursive). Relative
    /// paths are taken from the crate's directory. May be given several times; at least once.
    pub fn providers(mut self, path: impl AsRef<Path>) -> Build {
        self.providers.push(path.as_ref().to_path_buf());
        self
    }

    /// Checks the generated modules against a checked-in copy in `dir`, as
    /// `otvi-codegen emit PROVIDERS --out DIR` writes it: the build fails, naming that command,
    /// when the copy differs from what is being compiled. Reviewers read the copy; the check
    /// guarantees it is what runs.
    pub fn audit_copy(mut self, dir: impl AsRef<Path>) -> Build {
        self.audit_copy = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Where the modules go, instead of `$OUT_DIR/otvi` (for tools; a build script needs
    /// no other place).
    pub fn out_dir(mut self, dir: impl AsRef<Path>) -> Build {
        self.out_dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Every outcome of every step needs a response sample that selects it
    /// (`check --require-samples`).
    pub fn require_samples(mut self, yes: bool) -> Build {
        self.require_samples = yes;
        self
    }

    /// Warnings fail the build (`check --deny-warnings`).
    pub fn deny_warnings(mut self, yes: bool) -> Build {
        self.deny_warnings = yes;
        self
    }

    /// Checks the provider files, writes the generated modules, and checks the audit copy.
    pub fn compile(self) -> Result<(), BuildError> {
        let base = std::env::var_os("CARGO_MANIFEST_DIR")
            .map(PathBuf::from)
            .or_else(|| std::env::current_dir().ok())
            .unwrap_or_default();
        let from_base = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        if self.providers.is_empty() {
            return Err(BuildError::Setup(
                "no provider files given: call `.providers(\"providers\")`".into(),
            ));
        }
        let paths: Vec<PathBuf> = self.providers.iter().map(|p| from_base(p)).collect();
        for p in &paths {
            // A directory: files added to or removed from it.
            rerun_if_changed(p);
        }
        let files = collect_files(&paths).map_err(|error| BuildError::Io {
            path: paths[0].clone(),
            error,
        })?;
        if files.is_empty() {
            return Err(BuildError::Setup(format!(
                "no provider files (*.yaml, *.yml) in {}",
                self.providers
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let options = Options {
            require_samples: self.require_samples,
        };
        let mut outcome = crate::check_paths_from_with(&files, &base, options);
        for f in &files {
            rerun_if_changed(f);
        }
        for read in outcome.files.iter().flat_map(|f| &f.reads) {
            rerun_if_changed(read);
        }
        if self.deny_warnings {
            for d in outcome
                .files
                .iter_mut()
                .flat_map(|f| &mut f.report.diagnostics)
            {
                d.severity = Severity::Error;
            }
        }
        for f in &outcome.files {
            eprint!("{}", f.report.render(Format::Human));
            for d in f.report.diagnostics.iter().filter(|d| !d.is_error()) {
                println!(
                    "cargo::warning={}:{}:{}: {}",
                    f.report.path, d.span.start.line, d.span.start.col, d.message
                );
            }
        }
        let shown: Vec<String> = self
            .providers
            .iter()
            .map(|p| crate::display_path(&from_base(p), &base))
            .collect();
        let providers = match outcome.providers() {
            Some(p) if outcome.errors() == 0 => p,
            _ => {
                let deny = if self.deny_warnings {
                    "--deny-warnings "
                } else {
                    ""
                };
                return Err(BuildError::Invalid {
                    errors: outcome.errors(),
                    command: format!("otvi-codegen check {deny}{}", shown.join(" ")),
                });
            }
        };
        let out = match &self.out_dir {
            Some(d) => from_base(d),
            None => std::env::var_os("OUT_DIR")
                .map(|d| PathBuf::from(d).join(OUT_SUBDIR))
                .ok_or_else(|| {
                    BuildError::Setup(
                        "OUT_DIR is not set: call `compile` from a build script, or set \
                         `.out_dir(…)`"
                            .into(),
                    )
                })?,
        };
        // In OUT_DIR, the modules of provider files that did not change since the last build
        // are read back rather than emitted again.
        let cache = match self.out_dir {
            None => EmitCache::open(&out),
            Some(_) => None,
        };
        let mut keys = Vec::new();
        let emitted = emit::emit_all_with(&providers, |i, name| {
            let cache = cache.as_ref()?;
            let key = cache.key(&outcome.files[i].report, name);
            let reused = cache.reuse(name, &key);
            keys.push((key, name.to_string()));
            reused
        });
        crate::write_if_changed(&out, &emitted).map_err(|error| BuildError::Io {
            path: out.clone(),
            error,
        })?;
        if let Some(cache) = &cache {
            cache.save(&keys);
        }
        if let Some(dir) = &self.audit_copy {
            let dir = from_base(dir);
            rerun_if_changed(&dir);
            for (name, _) in &emitted {
                rerun_if_changed(&dir.join(name));
            }
            let files = audit_differences(&dir, &emitted);
            if !files.is_empty() {
                let shown_dir = crate::display_path(&dir, &base);
                return Err(BuildError::StaleAuditCopy {
                    command: format!("otvi-codegen emit {} --out {shown_dir}", shown.join(" ")),
                    dir: PathBuf::from(shown_dir),
                    files,
                });
            }
        }
        Ok(())
    }
}

/// What the last build emitted into OUT_DIR, so that a build emits again only the modules of
/// provider files that changed: emitting (building and formatting the code) is most of a
/// build script's time, and one edited file among hundreds is the common case. Every file is
/// still checked.
///
/// `$OUT_DIR/otvi-emitted.txt` holds a line `KEY FILE` per module, where the key hashes all
/// that the module is emitted from: the compiler that emitted it (this build script's
/// executable, which cargo links anew whenever otvi-codegen changes), the provider file's
/// name and text, and the module's file name. A module is read back only when its key is the
/// one recorded. The list is removed before anything is written and saved after, so a build
/// that stops half-way leaves none, and the next one emits everything.
struct EmitCache {
    list: PathBuf,
    dir: PathBuf,
    compiler: String,
    last: HashMap<String, String>,
}

impl EmitCache {
    /// The cache of the modules in `dir` (`$OUT_DIR/otvi`); `None` when this executable
    /// cannot be told apart from another build of the compiler (no modification time).
    fn open(dir: &Path) -> Option<EmitCache> {
        let exe = std::fs::metadata(std::env::current_exe().ok()?).ok()?;
        let built = exe.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
        let compiler = format!(
            "{} {} {}.{:09}",
            env!("CARGO_PKG_VERSION"),
            exe.len(),
            built.as_secs(),
            built.subsec_nanos()
        );
        let list = dir.with_file_name(format!("{OUT_SUBDIR}-emitted.txt"));
        let last = std::fs::read_to_string(&list)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(key, file)| (file.to_string(), key.to_string()))
            .collect();
        // Gone until this build has written every module: a build that stops half-way
        // leaves no list behind.
        let _ = std::fs::remove_file(&list);
        Some(EmitCache {
            list,
            dir: dir.to_path_buf(),
            compiler,
            last,
        })
    }

    fn key(&self, file: &FileReport, module: &str) -> String {
        let mut h = DefaultHasher::new();
        (&self.compiler, &file.path, &file.source, module).hash(&mut h);
        format!("{:016x}", h.finish())
    }

    /// The module in `file` as the last build emitted it, if it was emitted under `key`.
    fn reuse(&self, file: &str, key: &str) -> Option<String> {
        if self.last.get(file).map(String::as_str) != Some(key) {
            return None;
        }
        std::fs::read_to_string(self.dir.join(file)).ok()
    }

    /// Records the modules just written (best effort: without the list, the next build emits
    /// everything again).
    fn save(&self, keys: &[(String, String)]) {
        let text: String = keys.iter().map(|(k, f)| format!("{k} {f}\n")).collect();
        let _ = std::fs::write(&self.list, text);
    }
}

fn rerun_if_changed(path: &Path) {
    println!("cargo::rerun-if-changed={}", path.display());
}

/// The files of the copy in `dir` that are not `emitted` byte for byte (line endings aside):
/// changed, missing, or `.rs` files the emission does not have.
pub fn audit_differences(dir: &Path, emitted: &[(String, String)]) -> Vec<String> {
    let mut differ = Vec::new();
    for (name, text) in emitted {
        match std::fs::read_to_string(dir.join(name)) {
            Ok(copy) if copy.replace("\r\n", "\n") == *text => {}
            Ok(_) => differ.push(format!("{name} differs")),
            Err(_) => differ.push(format!("{name} is missing")),
        }
    }
    let extra = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|n| n.ends_with(".rs") && !emitted.iter().any(|(e, _)| e == n));
    differ.extend(extra.map(|n| format!("{n} is not generated")));
    differ.sort();
    differ
}
