//! `otvi-codegen`: check provider files (human, JSON, GitHub or SARIF output), emit Rust, print
//! the language's JSON Schema.

use clap::{Parser, Subcommand};
use otvi_codegen::diag::{Format, Severity};

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "otvi-codegen",
    version,
    about = "The otvi provider-language compiler"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check provider files; exit 1 if any has an error.
    Check {
        /// Provider files, or directories holding `*.yaml` / `*.yml` files.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Treat warnings as errors.
        #[arg(long)]
        deny_warnings: bool,
        /// Every outcome of every step needs a response sample that selects it.
        #[arg(long)]
        require_samples: bool,
        /// Output format: `sarif` prints one SARIF 2.1.0 log for all files.
        #[arg(long, value_enum, default_value_t = CheckFormat::Human)]
        format: CheckFormat,
    },
    /// Check provider files and write the generated Rust modules into a directory.
    Emit {
        /// Provider files, or directories holding them.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// The directory to write one module per provider and their root (`providers.rs`)
        /// into: the audit copy a build's `Build::audit_copy` checks.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the JSON Schema of the provider language, for YAML editor plugins.
    Schema,
    /// An audit report of one provider file: every request each flow can send, where each
    /// input, secret and stored value goes, what is kept from each answer, and per sensitive
    /// value every place it is sent.
    Explain {
        /// The provider file.
        file: PathBuf,
        /// `human` for a reviewer, `json` for tools, `mermaid` for a picture of the step graph.
        #[arg(long, value_enum, default_value_t = ExplainFormat::Human)]
        format: ExplainFormat,
    },
    /// A language server for provider files, speaking LSP on stdin and stdout: the compiler's
    /// diagnostics as a file is edited, hovers, completion of placeholder names, and
    /// go-to-definition from a placeholder to what it names.
    Lsp,
    /// Run a provider file's flows through the Rust compiled from it, against the file's
    /// response samples, with no network: each request a step would send (user values and
    /// secrets shown as markers) and what each sample leads to. Needs `cargo`; the first run
    /// builds the runtime.
    Simulate {
        /// The provider file.
        file: PathBuf,
        /// A flow to run (repeatable; `check`: the session check); every flow and the session
        /// check when absent.
        #[arg(long = "flow", value_name = "ID")]
        flows: Vec<String>,
        /// The `otvi-runtime` crate to build against [default: the one beside this compiler's
        /// sources].
        #[arg(long, value_name = "DIR", env = "OTVI_RUNTIME_DIR")]
        runtime: Option<PathBuf>,
        /// Cargo's target directory for the simulation [default: `target/simulate` in the
        /// runtime's workspace].
        #[arg(long, value_name = "DIR", env = "OTVI_SIMULATE_TARGET_DIR")]
        target_dir: Option<PathBuf>,
    },
}

/// The checked model of one provider file, or the exit code after printing why there is none
/// (`doing`: what could not be done).
fn checked(file: &std::path::Path, doing: &str) -> Result<otvi_codegen::model::Provider, ExitCode> {
    let bytes = std::fs::read(file).map_err(|e| {
        eprintln!("error: cannot read {}: {e}", file.display());
        ExitCode::from(2)
    })?;
    let checked = otvi_codegen::check_one(&file.display().to_string(), &bytes);
    match checked.provider {
        Some(p) if !checked.report.diagnostics.iter().any(|d| d.is_error()) => Ok(p),
        _ => {
            eprint!("{}", checked.report.render(Format::Human));
            eprintln!(
                "error: {} does not check; nothing to {doing}",
                file.display()
            );
            Err(ExitCode::from(1))
        }
    }
}

/// How `check` prints: one entry per diagnostic, or one SARIF 2.1.0 log for all files.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum CheckFormat {
    Human,
    Json,
    Github,
    /// One SARIF 2.1.0 log for all files, for code-scanning dashboards.
    Sarif,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ExplainFormat {
    Human,
    Json,
    Mermaid,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check {
            paths,
            deny_warnings,
            require_samples,
            format,
        } => {
            let files = match otvi_codegen::collect_files(&paths) {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            if files.is_empty() {
                eprintln!("error: no provider files (*.yaml, *.yml) found");
                return ExitCode::from(2);
            }
            let mut outcome =
                otvi_codegen::check_paths_with(&files, otvi_codegen::Options { require_samples });
            if deny_warnings {
                for f in &mut outcome.files {
                    for d in &mut f.report.diagnostics {
                        d.severity = Severity::Error;
                    }
                }
            }
            // A closed pipe (`| head`) ends the output quietly, never in a panic.
            let mut out = std::io::stdout().lock();
            let per_file = match format {
                CheckFormat::Human => Some(Format::Human),
                CheckFormat::Json => Some(Format::Json),
                CheckFormat::Github => Some(Format::Github),
                CheckFormat::Sarif => None,
            };
            if let Some(format) = per_file {
                for f in &outcome.files {
                    let _ = out.write_all(f.report.render(format).as_bytes());
                }
            } else {
                // One log for every file, empty results included: dashboards want one upload.
                let log = otvi_codegen::sarif::render(outcome.files.iter().map(|f| &f.report));
                let _ = out.write_all(log.as_bytes());
            }
            let (errors, warnings) = (outcome.errors(), outcome.warnings());
            if format == CheckFormat::Human {
                let plural =
                    |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
                if errors > 0 {
                    // The summary goes to stderr: stdout holds one entry per diagnostic.
                    eprintln!(
                        "check failed: {} in {}; {}",
                        plural(errors, "error"),
                        plural(
                            outcome
                                .files
                                .iter()
                                .filter(|f| f.report.diagnostics.iter().any(|d| d.is_error()))
                                .count(),
                            "file"
                        ),
                        plural(warnings, "warning")
                    );
                } else {
                    eprintln!(
                        "checked {}: {}",
                        plural(files.len(), "provider file"),
                        plural(warnings, "warning")
                    );
                }
            }
            if errors > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Command::Emit { paths, out } => {
            let files = match otvi_codegen::collect_files(&paths) {
                Ok(f) if !f.is_empty() => f,
                Ok(_) => {
                    eprintln!("error: no provider files (*.yaml, *.yml) found");
                    return ExitCode::from(2);
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            match otvi_codegen::generate(&files, std::path::Path::new(""), &out) {
                Ok((outcome, _)) => {
                    for f in &outcome.files {
                        eprint!("{}", f.report.render(Format::Human));
                    }
                    if outcome.errors() > 0 {
                        return ExitCode::from(1);
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: cannot write {}: {e}", out.display());
                    ExitCode::from(2)
                }
            }
        }
        Command::Explain { file, format } => {
            let provider = match checked(&file, "explain") {
                Ok(p) => p,
                Err(code) => return code,
            };
            let report = otvi_codegen::explain::explain(&provider);
            let text = match format {
                ExplainFormat::Human => report.human(),
                ExplainFormat::Json => {
                    serde_json::to_string_pretty(&report).unwrap_or_default() + "\n"
                }
                ExplainFormat::Mermaid => report.mermaid(),
            };
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            for w in &report.warnings {
                eprintln!("warning: {w}");
            }
            ExitCode::SUCCESS
        }
        Command::Simulate {
            file,
            flows,
            runtime,
            target_dir,
        } => {
            let provider = match checked(&file, "simulate") {
                Ok(p) => p,
                Err(code) => return code,
            };
            let flows = match otvi_codegen::simulate::select(&provider, &flows) {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let mut build = otvi_codegen::simulate::Setup::beside_compiler();
            if let Some(r) = runtime {
                build.runtime = r;
            }
            if let Some(t) = target_dir {
                build.target_dir = t;
            }
            let name = file.display().to_string();
            match otvi_codegen::simulate::run(&name, &provider, &flows, &build) {
                Ok(text) => {
                    let _ = std::io::stdout().lock().write_all(text.as_bytes());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Lsp => otvi_codegen::lsp::run_stdio(),
        Command::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&otvi_codegen::schema::schema()).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
    }
}
