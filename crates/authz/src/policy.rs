//! A compiled policy set: loading `.rego` files, compiling them once, and evaluating requests
//! against the compiled form.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::{Program, RegoVM};
use sha2::{Digest, Sha256};

use crate::error::{Diagnostic, PolicyError};
use crate::request::{AuthzRequest, Decision};

/// The rule every policy set must define: `decision` in package `authz`, an object
/// `{"allowed": bool, "reason": string}`.
pub const ENTRYPOINT: &str = "data.authz.decision";

/// The directory of the policies shipped with this crate (`crates/authz/policies`).
pub fn shipped_policy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")
}

/// The shipped policies, embedded at build time so that a binary does not need the repository
/// at run time. Named as in [`shipped_policy_dir`], so the version matches a directory load.
const SHIPPED: [(&str, &str); 3] = [
    ("decision.rego", include_str!("../policies/decision.rego")),
    ("rbac.rego", include_str!("../policies/rbac.rego")),
    ("tenancy.rego", include_str!("../policies/tenancy.rego")),
];

/// Identifies the exact policy sources a decision was made with: a SHA-256 prefix over the
/// file names and contents. Equal sources give equal versions in every process, which is what
/// lets decisions be shared through Redis.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PolicyVersion(String);

impl PolicyVersion {
    /// The version as hex text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PolicyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One policy source: `name` identifies it in the version, `path` in error messages.
struct Source {
    name: String,
    path: PathBuf,
    text: String,
}

/// How an evaluation ended. Failures are denials too, but are not worth caching: they may be
/// transient (a time limit) and should be retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Decided(Decision),
    Failed(Decision),
}

impl Outcome {
    pub(crate) fn into_decision(self) -> Decision {
        match self {
            Self::Decided(decision) | Self::Failed(decision) => decision,
        }
    }
}

/// Instructions one evaluation may execute in the bytecode VM before it gives up and the
/// interpreter decides instead: far above regorus' default of 25,000, so that large policy sets
/// are not cut short. The limit only stops a runaway program from holding a VM for long; reaching
/// it never changes a decision, since the interpreter then decides.
const VM_INSTRUCTION_LIMIT: usize = 10_000_000;

/// Idle VMs kept for reuse; more than the tasks that evaluate at once is never needed.
const VM_POOL_CAPACITY: usize = 64;

/// The policies compiled to regorus' bytecode (RVM), with idle VMs that have the program
/// loaded. A VM keeps its registers and caches between evaluations, so reusing one costs no
/// set-up; each evaluation resets its state.
struct Bytecode {
    program: Arc<Program>,
    idle: Mutex<Vec<RegoVM>>,
}

impl Bytecode {
    fn vm(&self) -> RegoVM {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        idle.unwrap_or_else(|| {
            let mut vm = RegoVM::new();
            vm.load_program(Arc::clone(&self.program));
            vm.set_max_instructions(VM_INSTRUCTION_LIMIT);
            // A builtin's error is an error, as in the interpreter, rather than an undefined
            // expression (the VM's default), so that it reaches the interpreter's fallback.
            vm.set_strict_builtin_errors(true);
            vm
        })
    }

    fn give_back(&self, vm: RegoVM) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < VM_POOL_CAPACITY {
            idle.push(vm);
        }
    }
}

/// Policies compiled once, evaluated many times.
///
/// Evaluation takes `&self` and never recompiles. The policies are compiled twice at load: to
/// regorus' analysed form (`CompiledPolicy`, the tree interpreter) and from it to regorus'
/// bytecode (RVM), which decides every request. The interpreter is the authority whenever the
/// VM does not produce a defined value: an evaluation error (so that the reason names the file
/// and line, as the interpreter reports it), an undefined decision, the VM's instruction limit,
/// or a policy set the bytecode compiler does not support (then every evaluation uses the
/// interpreter). A `PolicySet` is `Send + Sync`, so one set serves any number of tasks at once;
/// clones share the compiled forms and the VMs.
#[derive(Clone)]
pub struct PolicySet {
    compiled: regorus::CompiledPolicy,
    bytecode: Option<Arc<Bytecode>>,
    version: PolicyVersion,
    files: Vec<PathBuf>,
}

// Hand-written: the derived form would print the whole compiled syntax tree.
impl fmt::Debug for PolicySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicySet")
            .field("version", &self.version)
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl PolicySet {
    /// Loads and compiles every `.rego` file under `dir` (recursively).
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<Self, PolicyError> {
        let dir = dir.as_ref();
        let mut paths = Vec::new();
        collect_rego_files(dir, &mut paths)?;
        if paths.is_empty() {
            return Err(PolicyError::NoPolicies {
                dir: dir.to_path_buf(),
            });
        }
        let sources = paths
            .into_iter()
            .map(|path| {
                let text = std::fs::read_to_string(&path).map_err(|source| PolicyError::Io {
                    path: path.clone(),
                    source,
                })?;
                // Names relative to the directory, with '/' separators, so that the version
                // does not depend on where the repository is checked out.
                let name = path
                    .strip_prefix(dir)
                    .unwrap_or(&path)
                    .components()
                    .map(|part| part.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                Ok(Source { name, path, text })
            })
            .collect::<Result<Vec<_>, PolicyError>>()?;
        Self::compile(sources)
    }

    /// Compiles policies given as `(name, source)` pairs; the names appear in errors.
    pub fn from_sources<N, S>(
        sources: impl IntoIterator<Item = (N, S)>,
    ) -> Result<Self, PolicyError>
    where
        N: Into<String>,
        S: Into<String>,
    {
        let sources = sources
            .into_iter()
            .map(|(name, text)| {
                let name = name.into();
                Source {
                    path: PathBuf::from(&name),
                    name,
                    text: text.into(),
                }
            })
            .collect();
        Self::compile(sources)
    }

    /// The shipped policies (RBAC and tenancy for the commerce API), from the copy embedded
    /// in the binary.
    pub fn shipped() -> Result<Self, PolicyError> {
        Self::from_sources(SHIPPED)
    }

    fn compile(mut sources: Vec<Source>) -> Result<Self, PolicyError> {
        // Sorted, so that the version does not depend on the order files were listed in.
        sources.sort_by(|a, b| a.name.cmp(&b.name));
        let mut engine = regorus::Engine::new();
        let mut hasher = Sha256::new();
        for source in &sources {
            // Length prefixes keep ("ab", "c") and ("a", "bc") apart.
            for part in [source.name.as_bytes(), source.text.as_bytes()] {
                hasher.update((part.len() as u64).to_le_bytes());
                hasher.update(part);
            }
            engine
                .add_policy(source.path.display().to_string(), source.text.clone())
                .map_err(|error| {
                    let diagnostic = Diagnostic::parse(&format!("{error:#}"));
                    match diagnostic.location {
                        // The error concerns the file just added; keep its path as given
                        // rather than the lossy text regorus printed.
                        Some(mut location) => {
                            location.file.clone_from(&source.path);
                            PolicyError::Syntax {
                                location,
                                message: diagnostic.message,
                            }
                        }
                        None => PolicyError::Load {
                            file: source.path.clone(),
                            message: diagnostic.message,
                        },
                    }
                })?;
        }
        let compiled = engine
            .compile_with_entrypoint(&ENTRYPOINT.into())
            .map_err(|error| {
                let diagnostic = Diagnostic::parse(&format!("{error:#}"));
                PolicyError::Compile {
                    location: diagnostic.location,
                    message: format!("entry point {ENTRYPOINT}: {}", diagnostic.message),
                }
            })?;
        let bytecode = match Compiler::compile_from_policy(&compiled, &[ENTRYPOINT]) {
            Ok(program) => Some(Arc::new(Bytecode {
                program,
                idle: Mutex::new(Vec::new()),
            })),
            Err(error) => {
                tracing::info!(
                    %error,
                    "the policies use a feature regorus' bytecode VM does not support; \
                     evaluating them with the interpreter"
                );
                None
            }
        };
        let digest = hasher.finalize();
        let version = digest
            .iter()
            .take(16)
            .map(|byte| format!("{byte:02x}"))
            .collect::<String>();
        Ok(Self {
            compiled,
            bytecode,
            version: PolicyVersion(version),
            files: sources.into_iter().map(|source| source.path).collect(),
        })
    }

    /// The version of these sources.
    pub fn version(&self) -> &PolicyVersion {
        &self.version
    }

    /// The policy files, sorted by name.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Evaluates `request` (no cache). Never fails: anything other than a well-formed decision
    /// from the policies is a denial whose reason says what went wrong.
    pub fn evaluate(&self, request: &AuthzRequest) -> Decision {
        self.outcome(request).into_decision()
    }

    /// Evaluates `request` with the tree interpreter only, never the bytecode VM: the
    /// reference the VM is tested against.
    #[doc(hidden)]
    pub fn evaluate_interpreted(&self, request: &AuthzRequest) -> Decision {
        self.interpreted(request.to_value()).into_decision()
    }

    /// Whether the bytecode VM evaluates these policies (otherwise the interpreter does).
    pub fn uses_bytecode(&self) -> bool {
        self.bytecode.is_some()
    }

    pub(crate) fn outcome(&self, request: &AuthzRequest) -> Outcome {
        let input = request.to_value();
        let outcome = match &self.bytecode {
            Some(bytecode) => {
                let mut vm = bytecode.vm();
                // `input` is reference-counted: the copy for the interpreter costs nothing.
                vm.set_input(input.clone());
                // The unwind guard: a defect inside regorus must end as a denial, not a crash.
                // A VM that panicked may be in any state and is dropped, not reused.
                match catch_unwind(AssertUnwindSafe(|| vm.execute())) {
                    // An undefined decision is rare (policies define a default) and is where
                    // the VM and the interpreter could differ (an error the VM swallowed):
                    // the interpreter says which it is.
                    Ok(Ok(value)) if value != regorus::Value::Undefined => {
                        bytecode.give_back(vm);
                        decision_from_value(&value)
                    }
                    Ok(_) => {
                        bytecode.give_back(vm);
                        self.interpreted(input)
                    }
                    Err(_) => self.interpreted(input),
                }
            }
            None => self.interpreted(input),
        };
        if let Outcome::Failed(decision) = &outcome {
            tracing::warn!(
                version = %self.version,
                action = %request.action,
                reason = %decision.reason,
                "policy evaluation failed; denying"
            );
        }
        outcome
    }

    /// Evaluates with the tree interpreter, which reports errors with their file and line.
    fn interpreted(&self, input: regorus::Value) -> Outcome {
        // regorus reports evaluation errors as values; the unwind guard is for the case where
        // a defect inside it panics instead, which must still end as a denial, not a crash.
        let evaluated = catch_unwind(AssertUnwindSafe(|| self.compiled.eval_with_input(input)));
        match evaluated {
            Ok(Ok(value)) => decision_from_value(&value),
            Ok(Err(error)) => {
                let diagnostic = Diagnostic::parse(&format!("{error:#}"));
                let at = diagnostic
                    .location
                    .map(|location| format!(" at {location}"))
                    .unwrap_or_default();
                Outcome::Failed(Decision::deny(format!(
                    "policy evaluation failed{at}: {}",
                    diagnostic.message
                )))
            }
            Err(_) => Outcome::Failed(Decision::deny("policy evaluation panicked")),
        }
    }
}

fn decision_from_value(value: &regorus::Value) -> Outcome {
    if *value == regorus::Value::Undefined {
        return Outcome::Decided(Decision::deny(
            "the policies made no decision (denied by default)",
        ));
    }
    let allowed = value["allowed"].as_bool().ok().copied();
    let reason = value["reason"].as_string().ok();
    match (allowed, reason) {
        (Some(allowed), Some(reason)) => Outcome::Decided(Decision {
            allowed,
            reason: reason.to_string(),
        }),
        _ => Outcome::Failed(Decision::deny(format!(
            "the policies returned a malformed decision: {}",
            value.to_json_str().unwrap_or_else(|_| format!("{value:?}"))
        ))),
    }
}

fn collect_rego_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), PolicyError> {
    let io_error = |source| PolicyError::Io {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io_error)? {
        let path = entry.map_err(io_error)?.path();
        if path.is_dir() {
            collect_rego_files(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "rego") {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::request::{Resource, Subject, actions, kinds, roles};

    fn request() -> AuthzRequest {
        AuthzRequest::new(
            Subject::new("t1", "u1", [roles::CUSTOMER]),
            actions::CART_GET,
            Resource::owned(kinds::CART, "t1", "u1"),
        )
    }

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn policy_set_is_shareable_across_threads() {
        assert_send_sync::<PolicySet>();
    }

    #[test]
    fn shipped_copy_matches_the_directory() {
        let embedded = PolicySet::shipped().expect("shipped policies compile");
        let loaded = PolicySet::load_dir(shipped_policy_dir()).expect("policy directory loads");
        assert_eq!(embedded.version(), loaded.version());
        assert_eq!(loaded.files().len(), SHIPPED.len());
    }

    #[test]
    fn version_depends_on_content_not_order() {
        let a = (
            "a.rego",
            "package authz\nimport rego.v1\ndecision := {\"allowed\": true, \"reason\": \"a\"}\n",
        );
        let b = ("b.rego", "package other\nimport rego.v1\nx := 1\n");
        let ab = PolicySet::from_sources([a, b]).expect("compiles");
        let ba = PolicySet::from_sources([b, a]).expect("compiles");
        assert_eq!(ab.version(), ba.version());
        let changed =
            PolicySet::from_sources([a, ("b.rego", "package other\nimport rego.v1\nx := 2\n")])
                .expect("compiles");
        assert_ne!(ab.version(), changed.version());
        assert_eq!(ab.version().as_str().len(), 32);
    }

    #[test]
    fn malformed_decision_is_a_failed_deny() {
        let set = PolicySet::from_sources([(
            "bad_shape.rego",
            "package authz\nimport rego.v1\ndecision := {\"allowed\": \"yes\"}\n",
        )])
        .expect("compiles");
        let Outcome::Failed(decision) = set.outcome(&request()) else {
            panic!("a malformed decision must be a failure");
        };
        assert!(!decision.allowed);
        assert!(
            decision
                .reason
                .starts_with("the policies returned a malformed decision"),
            "{}",
            decision.reason
        );
    }

    #[test]
    fn undefined_decision_is_a_default_deny() {
        let set = PolicySet::from_sources([(
            "partial.rego",
            "package authz\nimport rego.v1\ndecision := {\"allowed\": true, \"reason\": \"admin\"} if input.subject.user_id == \"admin\"\n",
        )])
        .expect("compiles");
        assert_eq!(
            set.outcome(&request()),
            Outcome::Decided(Decision::deny(
                "the policies made no decision (denied by default)"
            ))
        );
    }

    #[test]
    fn missing_entry_point_is_a_compile_error() {
        let error =
            PolicySet::from_sources([("other.rego", "package other\nimport rego.v1\nx := 1\n")])
                .expect_err("no authz.decision");
        assert!(matches!(error, PolicyError::Compile { .. }), "{error}");
        assert!(error.to_string().contains(ENTRYPOINT), "{error}");
    }
}
