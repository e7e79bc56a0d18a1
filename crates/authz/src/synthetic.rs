//! Synthetic policy sets of increasing size, with matching requests and their expected
//! decisions, for the benchmarks.
//!
//! A set of `n` rules models an organisation with several resource kinds, verbs, roles and
//! tenants, where the number of each grows with `n`. Rules come in the shapes real policy sets
//! have, not as copies of one rule:
//!
//! - exact grants: a role may perform one action on own / tenant / any-tenant resources;
//! - verb patterns: a role may read (`:get`, `:list`, `:export`) every kind in its tenant or
//!   across tenants;
//! - kind patterns: a role may do anything to one kind of resource in its tenant;
//! - tenant-specific grants: a role may perform an action only in one tenant;
//! - grants to every authenticated user (catalogue-style reads);
//! - denials (one rule in ten), which override grants: a tenant suspended for a resource kind,
//!   or a role barred from a verb.
//!
//! Every rule is also kept as a small Rust model, which computes the decision each generated
//! request must get; the tests hold the compiled Rego to that model. Generation is
//! deterministic: the same size always yields the same files and requests, across runs,
//! machines and dependency upgrades (see [`SplitMix64`]), so benchmark baselines stay
//! comparable.

use std::fmt::Write as _;
use std::path::Path;

use crate::error::PolicyError;
use crate::policy::PolicySet;
use crate::request::{AuthzRequest, Decision, Resource, Subject};

/// The benchmark sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicySize {
    /// 10 rules.
    Small,
    /// 100 rules.
    Medium,
    /// 1,000 rules.
    Large,
}

impl PolicySize {
    /// All sizes, smallest first.
    pub const ALL: [PolicySize; 3] = [PolicySize::Small, PolicySize::Medium, PolicySize::Large];

    /// How many rules a set of this size has.
    pub fn rule_count(self) -> usize {
        match self {
            PolicySize::Small => 10,
            PolicySize::Medium => 100,
            PolicySize::Large => 1_000,
        }
    }

    /// A short name for benchmark ids: `small`, `medium`, `large`.
    pub fn name(self) -> &'static str {
        match self {
            PolicySize::Small => "small",
            PolicySize::Medium => "medium",
            PolicySize::Large => "large",
        }
    }
}

/// Requests generated per set by [`generate`].
pub const REQUESTS_PER_SET: usize = 256;

/// The seed [`generate`] uses.
pub const DEFAULT_SEED: u64 = 0x5EED_A07B_2025;

/// A request and the decision the set's policies must give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntheticCase {
    /// The request.
    pub request: AuthzRequest,
    /// What the rule model decides for it.
    pub expected: Decision,
}

/// A generated policy set: Rego sources plus requests with expected decisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntheticPolicySet {
    /// How many rules the sources hold (not counting the decision rule).
    pub rule_count: usize,
    /// `(file name, Rego source)` pairs: `decision.rego` and `rules_NNN.rego` files of at most
    /// [`RULES_PER_FILE`] rules each, all in package `authz`.
    pub files: Vec<(String, String)>,
    /// Requests covering both allow and deny paths, with their expected decisions.
    pub cases: Vec<SyntheticCase>,
}

/// Rules per generated file.
pub const RULES_PER_FILE: usize = 100;

impl SyntheticPolicySet {
    /// Compiles the sources.
    pub fn compile(&self) -> Result<PolicySet, PolicyError> {
        PolicySet::from_sources(
            self.files
                .iter()
                .map(|(name, text)| (name.as_str(), text.as_str())),
        )
    }

    /// The requests, without their expected decisions.
    pub fn requests(&self) -> impl Iterator<Item = &AuthzRequest> {
        self.cases.iter().map(|case| &case.request)
    }

    /// Writes the sources into `dir` (which must exist), e.g. to inspect them or to load them
    /// with [`PolicySet::load_dir`].
    pub fn write_to(&self, dir: &Path) -> std::io::Result<()> {
        for (name, text) in &self.files {
            std::fs::write(dir.join(name), text)?;
        }
        Ok(())
    }
}

/// The set of the given size, with [`REQUESTS_PER_SET`] requests and [`DEFAULT_SEED`].
pub fn generate(size: PolicySize) -> SyntheticPolicySet {
    generate_with(size.rule_count(), REQUESTS_PER_SET, DEFAULT_SEED)
}

/// A set of `rules` rules (at least 2: one grant and one denial) and `requests` requests.
pub fn generate_with(rules: usize, requests: usize, seed: u64) -> SyntheticPolicySet {
    let rules = rules.max(2);
    let mut rng = SplitMix64(seed);
    let vocabulary = Vocabulary::for_rules(rules);
    let width = rules.to_string().len().max(4);
    let model: Vec<Rule> = (0..rules)
        .map(|id| {
            // One rule in ten is a denial, and the last rule of a tiny set, so that every set
            // exercises the override path.
            let deny = id % 10 == 9 || (rules < 10 && id == rules - 1);
            Rule::generate(id, width, deny, &vocabulary, &mut rng)
        })
        .collect();

    let mut files = vec![("decision.rego".to_owned(), DECISION_REGO.to_owned())];
    for (index, chunk) in model.chunks(RULES_PER_FILE).enumerate() {
        let mut text = String::from(
            "# Generated by authz::synthetic; do not edit.\npackage authz\n\nimport rego.v1\n",
        );
        for rule in chunk {
            text.push('\n');
            rule.render(&mut text);
        }
        files.push((format!("rules_{index:03}.rego"), text));
    }

    let cases = (0..requests)
        .map(|_| {
            let request = vocabulary.request(&model, &mut rng);
            let expected = decide(&model, &request);
            SyntheticCase { request, expected }
        })
        .collect();
    SyntheticPolicySet {
        rule_count: rules,
        files,
        cases,
    }
}

/// The decision rule of every generated set: any matching denial wins (the lowest-numbered
/// one gives the reason), then any matching grant, else the default denial.
const DECISION_REGO: &str = r#"# Generated by authz::synthetic; do not edit.
package authz

import rego.v1

default decision := {"allowed": false, "reason": "no rule grants the request"}

decision := {"allowed": false, "reason": sort(deny_reasons)[0]} if {
	count(deny_reasons) > 0
} else := {"allowed": true, "reason": sort(allow_reasons)[0]} if {
	count(allow_reasons) > 0
}
"#;

const KINDS: [&str; 16] = [
    "cart",
    "order",
    "invoice",
    "product",
    "shipment",
    "review",
    "coupon",
    "refund",
    "catalog",
    "inventory",
    "payment",
    "report",
    "ticket",
    "warehouse",
    "supplier",
    "promotion",
];
const VERBS: [&str; 8] = [
    "get", "list", "create", "update", "delete", "approve", "export", "cancel",
];
const READ_VERBS: [&str; 3] = ["get", "list", "export"];
const BARRED_VERBS: [&str; 3] = ["delete", "approve", "export"];
const DEPARTMENTS: [&str; 8] = [
    "sales",
    "support",
    "finance",
    "warehouse",
    "marketing",
    "catalog",
    "audit",
    "ops",
];
const LEVELS: [&str; 4] = ["viewer", "editor", "manager", "lead"];
const USERS_PER_TENANT: usize = 8;

/// The names a set draws from; larger sets use more of each.
struct Vocabulary {
    kinds: Vec<&'static str>,
    roles: Vec<String>,
    tenants: Vec<String>,
}

impl Vocabulary {
    fn for_rules(rules: usize) -> Self {
        let kinds = (rules / 12).clamp(2, KINDS.len());
        let roles = (rules / 6).clamp(3, DEPARTMENTS.len() * LEVELS.len());
        let tenants = (rules / 25).clamp(2, 40);
        Self {
            kinds: KINDS[..kinds].to_vec(),
            // Level-major order, so that a small set gets roles of several departments.
            roles: LEVELS
                .iter()
                .flat_map(|level| {
                    DEPARTMENTS
                        .iter()
                        .map(move |dept| format!("{dept}_{level}"))
                })
                .take(roles)
                .collect(),
            tenants: (0..tenants).map(|t| format!("tenant-{t:02}")).collect(),
        }
    }

    fn user(&self, rng: &mut SplitMix64) -> String {
        format!("user-{}", rng.below(USERS_PER_TENANT))
    }

    fn other_tenant(&self, tenant: &str, rng: &mut SplitMix64) -> String {
        let others: Vec<&String> = self.tenants.iter().filter(|t| *t != tenant).collect();
        (*rng.pick(&others)).clone()
    }

    /// A request: half aimed at a grant so that it is likely allowed, a quarter aimed at a
    /// grant but out of its scope, a quarter at random.
    fn request(&self, rules: &[Rule], rng: &mut SplitMix64) -> AuthzRequest {
        let grants: Vec<&Rule> = rules.iter().filter(|rule| !rule.deny).collect();
        match rng.below(4) {
            0 | 1 => self.aimed_at(rng.pick::<&Rule>(&grants), rng),
            2 => {
                let mut request = self.aimed_at(rng.pick::<&Rule>(&grants), rng);
                let user = request.subject.user_id.clone();
                if rng.below(2) == 0 {
                    request.resource.tenant_id = self.other_tenant(&request.subject.tenant_id, rng);
                } else {
                    request.resource.owner_id = Some(format!("{user}-other"));
                }
                request
            }
            _ => {
                let tenant = rng.pick(&self.tenants).clone();
                let kind = *rng.pick(&self.kinds);
                let resource_tenant = if rng.below(3) == 0 {
                    self.other_tenant(&tenant, rng)
                } else {
                    tenant.clone()
                };
                AuthzRequest::new(
                    Subject::new(&tenant, self.user(rng), [rng.pick(&self.roles).clone()]),
                    format!("{kind}:{}", rng.pick(&VERBS)),
                    Resource::owned(kind, resource_tenant, self.user(rng)),
                )
            }
        }
    }

    /// A request that the grant `rule` matches (denials may still override it).
    fn aimed_at(&self, rule: &Rule, rng: &mut SplitMix64) -> AuthzRequest {
        let tenant = match &rule.tenant {
            Some(TenantMatch::Subject(tenant)) => tenant.clone(),
            Some(TenantMatch::Resource(_)) | None => rng.pick(&self.tenants).clone(),
        };
        let user = self.user(rng);
        let mut roles = vec![match &rule.role {
            RoleMatch::Role(role) => role.clone(),
            RoleMatch::Anyone => rng.pick(&self.roles).clone(),
        }];
        if rng.below(10) < 3 {
            roles.push(rng.pick(&self.roles).clone());
        }
        let action = match &rule.action {
            ActionMatch::Exact(action) => action.clone(),
            ActionMatch::Verb(verb) => format!("{}:{verb}", rng.pick(&self.kinds)),
            ActionMatch::Kind(kind) => format!("{kind}:{}", rng.pick(&VERBS)),
        };
        let kind = action.split(':').next().unwrap_or_default().to_owned();
        let resource = match rule.scope {
            Scope::Own => Resource::owned(kind, &tenant, &user),
            Scope::Tenant if rng.below(2) == 0 => Resource::tenant_wide(kind, &tenant),
            Scope::Tenant => Resource::owned(kind, &tenant, self.user(rng)),
            Scope::Any => Resource::owned(kind, self.other_tenant(&tenant, rng), self.user(rng)),
        };
        AuthzRequest::new(Subject::new(tenant, user, roles), action, resource)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum RoleMatch {
    Role(String),
    /// Any subject with at least one role.
    Anyone,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ActionMatch {
    /// One action; the resource must be of its kind.
    Exact(String),
    /// Any action with this verb, on any kind.
    Verb(&'static str),
    /// Any action on this kind; the resource must be of the kind.
    Kind(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Own,
    Tenant,
    Any,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TenantMatch {
    /// The caller belongs to this tenant.
    Subject(String),
    /// The resource belongs to this tenant.
    Resource(String),
}

/// One generated rule, as data; [`Rule::render`] writes its Rego, [`Rule::matches`] evaluates
/// it in Rust. The two must agree condition for condition.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    deny: bool,
    role: RoleMatch,
    action: ActionMatch,
    scope: Scope,
    tenant: Option<TenantMatch>,
    reason: String,
}

impl Rule {
    fn generate(
        id: usize,
        width: usize,
        deny: bool,
        vocabulary: &Vocabulary,
        rng: &mut SplitMix64,
    ) -> Self {
        let role = rng.pick(&vocabulary.roles).clone();
        let kind = *rng.pick(&vocabulary.kinds);
        let verb = *rng.pick(&VERBS);
        let tenant = rng.pick(&vocabulary.tenants).clone();
        let label = format!("rule {id:0width$}");
        if deny {
            return if rng.below(2) == 0 {
                Rule {
                    deny,
                    role: RoleMatch::Anyone,
                    action: ActionMatch::Kind(kind),
                    scope: Scope::Any,
                    reason: format!("{label}: {tenant} is suspended for {kind}"),
                    tenant: Some(TenantMatch::Resource(tenant)),
                }
            } else {
                let verb = *rng.pick(&BARRED_VERBS);
                Rule {
                    deny,
                    reason: format!("{label}: {role} may never {verb}"),
                    role: RoleMatch::Role(role),
                    action: ActionMatch::Verb(verb),
                    scope: Scope::Any,
                    tenant: None,
                }
            };
        }
        let shape = rng.below(100);
        let (role, action, scope, tenant) = match shape {
            0..55 => {
                let scope = match rng.below(10) {
                    0..5 => Scope::Own,
                    5..9 => Scope::Tenant,
                    _ if READ_VERBS.contains(&verb) => Scope::Any,
                    _ => Scope::Tenant,
                };
                (
                    RoleMatch::Role(role),
                    ActionMatch::Exact(format!("{kind}:{verb}")),
                    scope,
                    None,
                )
            }
            55..70 => {
                let scope = if rng.below(2) == 0 {
                    Scope::Tenant
                } else {
                    Scope::Any
                };
                let verb = *rng.pick(&READ_VERBS);
                (RoleMatch::Role(role), ActionMatch::Verb(verb), scope, None)
            }
            70..82 => (
                RoleMatch::Role(role),
                ActionMatch::Kind(kind),
                Scope::Tenant,
                None,
            ),
            82..94 => (
                RoleMatch::Role(role),
                ActionMatch::Exact(format!("{kind}:{verb}")),
                Scope::Tenant,
                Some(TenantMatch::Subject(tenant)),
            ),
            _ => (
                RoleMatch::Anyone,
                ActionMatch::Exact(format!("{kind}:{}", rng.pick(&READ_VERBS))),
                Scope::Tenant,
                None,
            ),
        };
        let who = match &role {
            RoleMatch::Role(role) => role.as_str(),
            RoleMatch::Anyone => "anyone",
        };
        let what = match &action {
            ActionMatch::Exact(action) => action.clone(),
            ActionMatch::Verb(verb) => format!("*:{verb}"),
            ActionMatch::Kind(kind) => format!("{kind}:*"),
        };
        let where_ = match (&scope, &tenant) {
            (_, Some(TenantMatch::Subject(tenant) | TenantMatch::Resource(tenant))) => {
                format!("in {tenant}")
            }
            (Scope::Own, None) => "on own resources".to_owned(),
            (Scope::Tenant, None) => "in own tenant".to_owned(),
            (Scope::Any, None) => "in any tenant".to_owned(),
        };
        Rule {
            deny,
            reason: format!("{label}: {who} may {what} {where_}"),
            role,
            action,
            scope,
            tenant,
        }
    }

    fn render(&self, out: &mut String) {
        let set = if self.deny {
            "deny_reasons"
        } else {
            "allow_reasons"
        };
        // Writing to a String cannot fail.
        let _ = writeln!(out, "{set} contains {:?} if {{", self.reason);
        let mut line = |condition: String| {
            let _ = writeln!(out, "\t{condition}");
        };
        match &self.role {
            RoleMatch::Role(role) => line(format!("{role:?} in input.subject.roles")),
            RoleMatch::Anyone => line("count(input.subject.roles) > 0".to_owned()),
        }
        match &self.action {
            ActionMatch::Exact(action) => {
                line(format!("input.action == {action:?}"));
                let kind = action.split(':').next().unwrap_or_default();
                line(format!("input.resource.kind == {kind:?}"));
            }
            ActionMatch::Verb(verb) => line(format!("endswith(input.action, \":{verb}\")")),
            ActionMatch::Kind(kind) => {
                line(format!("startswith(input.action, \"{kind}:\")"));
                line(format!("input.resource.kind == {kind:?}"));
            }
        }
        match &self.tenant {
            Some(TenantMatch::Subject(tenant)) => {
                line(format!("input.subject.tenant_id == {tenant:?}"));
            }
            Some(TenantMatch::Resource(tenant)) => {
                line(format!("input.resource.tenant_id == {tenant:?}"));
            }
            None => {}
        }
        match self.scope {
            Scope::Own => {
                line("input.resource.tenant_id == input.subject.tenant_id".to_owned());
                line("input.resource.owner_id == input.subject.user_id".to_owned());
            }
            Scope::Tenant => {
                line("input.resource.tenant_id == input.subject.tenant_id".to_owned());
            }
            Scope::Any => {}
        }
        out.push_str("}\n");
    }

    fn matches(&self, request: &AuthzRequest) -> bool {
        let subject = &request.subject;
        let resource = &request.resource;
        let role = match &self.role {
            RoleMatch::Role(role) => subject.roles.contains(role),
            RoleMatch::Anyone => !subject.roles.is_empty(),
        };
        let action = match &self.action {
            ActionMatch::Exact(action) => {
                request.action == *action
                    && action.split(':').next() == Some(resource.kind.as_str())
            }
            ActionMatch::Verb(verb) => request.action.ends_with(&format!(":{verb}")),
            ActionMatch::Kind(kind) => {
                request.action.starts_with(&format!("{kind}:")) && resource.kind == *kind
            }
        };
        let tenant = match &self.tenant {
            Some(TenantMatch::Subject(tenant)) => subject.tenant_id == *tenant,
            Some(TenantMatch::Resource(tenant)) => resource.tenant_id == *tenant,
            None => true,
        };
        let same_tenant = resource.tenant_id == subject.tenant_id;
        let scope = match self.scope {
            Scope::Own => same_tenant && resource.owner_id.as_deref() == Some(&subject.user_id),
            Scope::Tenant => same_tenant,
            Scope::Any => true,
        };
        role && action && tenant && scope
    }
}

/// The decision the generated `decision.rego` gives, computed from the rule models.
fn decide(rules: &[Rule], request: &AuthzRequest) -> Decision {
    let first_reason = |deny: bool| {
        rules
            .iter()
            .filter(|rule| rule.deny == deny && rule.matches(request))
            .map(|rule| rule.reason.as_str())
            .min()
    };
    if let Some(reason) = first_reason(true) {
        Decision::deny(reason)
    } else if let Some(reason) = first_reason(false) {
        Decision::allow(reason)
    } else {
        Decision::deny("no rule grants the request")
    }
}

/// A fixed pseudo-random generator (SplitMix64).
///
/// Hand-written instead of `rand`'s `StdRng` because `rand` documents that `StdRng`'s output
/// may change between its versions, and a changed request mix would silently move benchmark
/// results; these dozen lines will produce the same sequence forever.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`); the modulo bias is irrelevant here.
    fn below(&mut self, n: usize) -> usize {
        // Both conversions are lossless on 64-bit targets and bounded by `n` on others.
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic() {
        assert_eq!(generate(PolicySize::Small), generate(PolicySize::Small));
        assert_ne!(generate_with(10, 8, 1).files, generate_with(10, 8, 2).files);
    }

    #[test]
    fn splitmix_sequence_is_fixed() {
        // Reference values of SplitMix64 seeded with 0, so a change to the generator (and
        // with it every synthetic set) cannot go unnoticed.
        let mut rng = SplitMix64(0);
        assert_eq!(rng.next(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn sizes_have_their_rule_counts_and_files() {
        for size in PolicySize::ALL {
            let set = generate(size);
            assert_eq!(set.rule_count, size.rule_count());
            let rules: usize = set
                .files
                .iter()
                .map(|(_, text)| text.matches(" contains \"rule ").count())
                .sum();
            assert_eq!(rules, size.rule_count(), "{}", size.name());
            assert_eq!(
                set.files.len(),
                1 + size.rule_count().div_ceil(RULES_PER_FILE)
            );
            assert_eq!(set.cases.len(), REQUESTS_PER_SET);
        }
    }

    #[test]
    fn rules_are_varied() {
        let set = generate(PolicySize::Large);
        let text: String = set.files.iter().map(|(_, text)| text.as_str()).collect();
        for needle in [
            "endswith(input.action",
            "startswith(input.action",
            "input.subject.tenant_id == \"tenant-",
            "input.resource.tenant_id == \"tenant-",
            "input.resource.owner_id == input.subject.user_id",
            "count(input.subject.roles) > 0",
            "deny_reasons contains",
        ] {
            assert!(text.contains(needle), "no rule with {needle}");
        }
        // Rule bodies without their reason line: the conditions themselves must vary.
        let bodies: std::collections::HashSet<String> = text
            .split(" contains \"rule ")
            .skip(1)
            .map(|rule| {
                rule.lines()
                    .skip(1)
                    .take_while(|line| *line != "}")
                    .collect()
            })
            .collect();
        assert!(
            bodies.len() > 900,
            "only {} distinct rule bodies",
            bodies.len()
        );
    }
}
