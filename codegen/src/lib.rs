//! The otvi provider-language compiler: reads provider files, checks them, and emits typed Rust.
//!
//! Two phases, as in any compiler: `yaml` → `lower` builds the checked model (`model`), `check`
//! runs the language's rules over it; `emit` turns a clean model into Rust. A crate's
//! `build.rs` runs both with [`Build`]. Nothing here is linked into the server.

pub mod build;
pub mod check;
pub mod diag;
pub mod emit;
pub mod explain;
pub mod graph;
pub mod lower;
#[cfg(feature = "cli")]
pub mod lsp;
pub mod model;
pub mod reference;
pub mod sample;
pub mod sarif;
pub mod schema;
pub mod simulate;
pub mod template;
pub mod yaml;

pub use build::{Build, BuildError};

use diag::{Diagnostic, FileReport, Pos, Span};
use model::Provider;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One provider file after checking: its report, and the model when it has no errors.
#[derive(Debug)]
pub struct Checked {
    pub report: FileReport,
    pub provider: Option<Provider>,
    /// Other files it reads (`file:` samples), found or not: a build reruns when one changes.
    pub reads: Vec<PathBuf>,
}

/// How files are checked beyond the language's rules.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// `--require-samples`: every outcome of every step (the success of an `on_success` step)
    /// has a sample that selects it.
    pub require_samples: bool,
}

/// The result of checking a set of provider files.
#[derive(Debug, Default)]
pub struct Outcome {
    pub files: Vec<Checked>,
}

impl Outcome {
    pub fn errors(&self) -> usize {
        self.count(true)
    }
    pub fn warnings(&self) -> usize {
        self.count(false)
    }
    fn count(&self, errors: bool) -> usize {
        self.files
            .iter()
            .flat_map(|f| &f.report.diagnostics)
            .filter(|d| d.is_error() == errors)
            .count()
    }
    /// The checked providers, in file order; `None` if any file has an error.
    pub fn providers(&self) -> Option<Vec<(&str, &Provider)>> {
        self.files
            .iter()
            .map(|f| f.provider.as_ref().map(|p| (f.report.path.as_str(), p)))
            .collect()
    }
}

/// The provider files named by `paths`: files as given, directories searched (not recursively)
/// for `*.yaml` and `*.yml`, sorted by name.
pub fn collect_files(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.is_file()
                        && matches!(f.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
                })
                .collect();
            found.sort();
            out.extend(found);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// Reads and checks `files`. I/O errors are reported as diagnostics of the file concerned.
pub fn check_paths(files: &[PathBuf]) -> Outcome {
    check_paths_with(files, Options::default())
}

/// Like `check_paths`, with `options` (`--require-samples`).
pub fn check_paths_with(files: &[PathBuf], options: Options) -> Outcome {
    check_paths_from_with(files, Path::new(""), options)
}

/// Like `check_paths`, naming each file relative to `base` in diagnostics and generated code.
pub fn check_paths_from(files: &[PathBuf], base: &Path) -> Outcome {
    check_paths_from_with(files, base, Options::default())
}

/// `check_paths_from` with `options`.
pub fn check_paths_from_with(files: &[PathBuf], base: &Path, options: Options) -> Outcome {
    let sources = files
        .iter()
        .map(|f| {
            let name = display_path(f, base);
            match std::fs::read(f) {
                Ok(bytes) => (name, f, Ok(bytes)),
                Err(e) => (name, f, Err(e)),
            }
        })
        .collect::<Vec<_>>();
    let mut outcome = Outcome::default();
    for (name, file, bytes) in sources {
        outcome.files.push(match bytes {
            Ok(b) => check_file(&name, &b, file.parent(), options),
            Err(e) => Checked {
                report: FileReport {
                    path: name,
                    source: String::new(),
                    diagnostics: vec![Diagnostic::error(
                        "io",
                        Span::point(Pos { line: 1, col: 1 }),
                        format!("cannot read the file: {e}"),
                    )],
                },
                provider: None,
                reads: Vec::new(),
            },
        });
    }
    cross_file(&mut outcome);
    outcome
}

/// Checks in-memory sources: `(display name, bytes)` pairs.
pub fn check_sources<'a>(sources: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Outcome {
    let mut outcome = Outcome {
        files: sources.into_iter().map(|(n, b)| check_one(n, b)).collect(),
    };
    cross_file(&mut outcome);
    outcome
}

/// Checks a single file's bytes. `file:` samples are read relative to `path`'s directory.
pub fn check_one(path: &str, bytes: &[u8]) -> Checked {
    check_one_with(path, bytes, Options::default())
}

/// `check_one` with `options`.
pub fn check_one_with(path: &str, bytes: &[u8], options: Options) -> Checked {
    check_file(path, bytes, Path::new(path).parent(), options)
}

/// A file open in an editor, checked as it is being written (the language server's view).
#[derive(Debug)]
pub struct Draft {
    pub report: FileReport,
    /// The model as far as it could be built, errors or not: what hovers and completions are
    /// answered from while the file is broken. `None` when the YAML could not be read.
    pub model: Option<Provider>,
}

/// Checks `text`, the content of the file named `path` in diagnostics, reading `file:`
/// samples from `dir` (`None`: the current directory). The same checks as `check_one`; only
/// the model is kept when the file has errors.
pub fn check_draft(path: &str, text: &str, dir: Option<&Path>, options: Options) -> Draft {
    let (report, model, _) = check_bytes(path, text.as_bytes(), dir, options);
    Draft { report, model }
}

/// Checks the bytes of the file named `path` in diagnostics, reading `file:` samples from
/// `dir` (`None`: the current directory).
fn check_file(path: &str, bytes: &[u8], dir: Option<&Path>, options: Options) -> Checked {
    let (report, model, reads) = check_bytes(path, bytes, dir, options);
    let clean = !report.diagnostics.iter().any(Diagnostic::is_error);
    Checked {
        report,
        provider: model.filter(|_| clean),
        reads,
    }
}

/// The report of a file, its model as far as it was built (errors or not), and the other
/// files it reads.
fn check_bytes(
    path: &str,
    bytes: &[u8],
    dir: Option<&Path>,
    options: Options,
) -> (FileReport, Option<Provider>, Vec<PathBuf>) {
    let (source, mut diagnostics) = match std::str::from_utf8(bytes) {
        Ok(s) => (
            s.strip_prefix('\u{feff}').unwrap_or(s).to_string(),
            Vec::new(),
        ),
        Err(e) => {
            let valid = String::from_utf8_lossy(&bytes[..e.valid_up_to()]).into_owned();
            let line = valid.matches('\n').count() + 1;
            let col = valid.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            let d = Diagnostic::error(
                "not-utf8",
                Span::point(Pos { line, col }),
                format!(
                    "the file is not valid UTF-8 (byte {} is not part of a UTF-8 character)",
                    e.valid_up_to()
                ),
            )
            .with_help("save the provider file as UTF-8");
            let shown = String::from_utf8_lossy(bytes).into_owned();
            let report = FileReport {
                path: path.into(),
                source: shown,
                diagnostics: vec![d],
            };
            return (report, None, Vec::new());
        }
    };
    let (root, yaml_diags) = yaml::parse(&source);
    diagnostics.extend(yaml_diags);
    let mut provider = None;
    let mut reads = Vec::new();
    if let Some(root) = root {
        let mut lower = lower::Lower::default();
        lower.sample_dir = dir
            .filter(|d| !d.as_os_str().is_empty())
            .map(Path::to_path_buf);
        provider = lower.provider(&root);
        diagnostics.append(&mut lower.diags);
        reads = lower.sample_files;
        if let Some(p) = &provider {
            check::provider(p, &mut diagnostics);
            check::samples::check(p, options.require_samples, &mut diagnostics);
        }
    }
    diagnostics.sort_by_key(|d| (d.span.start, d.severity == diag::Severity::Warning));
    diagnostics.dedup();
    let report = FileReport {
        path: path.into(),
        source,
        diagnostics,
    };
    (report, provider, reads)
}

/// Rules across files: a provider id names one file.
fn cross_file(outcome: &mut Outcome) {
    let mut seen: HashMap<String, String> = HashMap::new();
    for f in &mut outcome.files {
        let Some(p) = &f.provider else { continue };
        if let Some(first) = seen.get(&p.id.v) {
            f.report.diagnostics.push(
                Diagnostic::error(
                    "duplicate-provider",
                    p.id.span,
                    format!("provider id `{}` is already used by {first}", p.id.v),
                )
                .with_help("provider ids are unique across files; rename one"),
            );
            f.provider = None;
        } else {
            seen.insert(p.id.v.clone(), f.report.path.clone());
        }
    }
}

/// A display path relative to `base` when possible, without `./` steps: `./providers/a.yaml`
/// and `providers/a.yaml` are one name, in diagnostics and in generated code.
pub fn display_path(path: &Path, base: &Path) -> String {
    path.strip_prefix(base)
        .unwrap_or(path)
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect::<PathBuf>()
        .display()
        .to_string()
}

/// Checks `files` and, when every one is clean, writes the generated Rust into `out`: each file
/// rewritten only when its content changed, stale `.rs` files removed. Returns the outcome
/// (the caller prints its diagnostics) and whether anything was written.
pub fn generate(files: &[PathBuf], base: &Path, out: &Path) -> std::io::Result<(Outcome, bool)> {
    let outcome = check_paths_from(files, base);
    let Some(providers) = outcome.providers() else {
        return Ok((outcome, false));
    };
    let emitted = emit::emit_all(&providers);
    let changed = write_if_changed(out, &emitted)?;
    Ok((outcome, changed))
}

/// Writes `files` (name, content) into `dir` where content differs; removes other `.rs` files.
pub fn write_if_changed(dir: &Path, files: &[(String, String)]) -> std::io::Result<bool> {
    std::fs::create_dir_all(dir)?;
    let mut changed = false;
    for (name, content) in files {
        let path = dir.join(name);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(content.as_str()) {
            std::fs::write(&path, content)?;
            changed = true;
        }
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if name.ends_with(".rs") && !files.iter().any(|(n, _)| *n == name) {
            std::fs::remove_file(&path)?;
            changed = true;
        }
    }
    Ok(changed)
}
