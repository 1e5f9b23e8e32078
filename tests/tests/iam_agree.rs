//! `template.yaml` grants each deployed function exactly what `shared::iam` says it needs: the
//! operations its handler reaches (`iam::FUNCTIONS`, checked by iam_reach.rs) and the actions
//! each operation's adapter needs (`iam::Op::needs`, checked by iam_calls.rs). Fewer is a
//! failure in AWS that moto cannot show (it ignores IAM); more is privilege nobody uses, allowed
//! only through `ALLOWED_EXTRA` with a reason.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use shared::iam::{self, Grant, Op, Resource};
use yaml_rust2::{Yaml, YamlLoader};

/// Grants beyond the tables: (function, action, resource as `canonical` writes it, why).
/// Keep it short; every entry must still be in the template.
const ALLOWED_EXTRA: &[(&str, &str, &str, &str)] = &[
    (
        "jobs-worker",
        "sqs:ReceiveMessage",
        "JobsQueue.Arn",
        "Lambda's SQS event source mapping polls the queue with the function's role",
    ),
    (
        "jobs-worker",
        "sqs:DeleteMessage",
        "JobsQueue.Arn",
        "Lambda's SQS event source mapping polls the queue with the function's role",
    ),
    (
        "jobs-worker",
        "sqs:GetQueueAttributes",
        "JobsQueue.Arn",
        "Lambda's SQS event source mapping polls the queue with the function's role",
    ),
    (
        "jobs-worker",
        "sqs:ChangeMessageVisibility",
        "JobsQueue.Arn",
        "Lambda's SQS event source mapping polls the queue with the function's role",
    ),
];

/// The template's logical ids of the table and the bucket.
const TABLE: &str = "Table";
const BUCKET: &str = "BundlesBucket";
/// The jobs queue's logical id.
const QUEUE: &str = "JobsQueue";

/// (action, resource) in one spelling: `!GetAtt X.Arn` and `!Sub ${X.Arn}` are both `X.Arn`.
type Granted = BTreeSet<(String, String)>;

fn canonical(resource: Resource) -> String {
    match resource {
        Resource::Table => format!("{TABLE}.Arn"),
        Resource::Index(name) => format!("${{{TABLE}.Arn}}/index/{name}"),
        Resource::Bucket => format!("{BUCKET}.Arn"),
        Resource::Objects(prefix) => format!("${{{BUCKET}.Arn}}/{prefix}*"),
        Resource::Queue => format!("{QUEUE}.Arn"),
    }
}

fn load_template() -> Yaml {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut docs = YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("template.yaml is not YAML: {e}"));
    docs.remove(0)
}

/// Strings or a list of them (`Action: x` or `Action: [x, y]`). CloudFormation tags are dropped
/// by the parser: `!GetAtt Table.Arn` reads "Table.Arn", `!Sub ${Table.Arn}/x` "${Table.Arn}/x".
fn strings(y: &Yaml, what: &str) -> Vec<String> {
    let one = |y: &Yaml| match y {
        Yaml::String(s) => {
            let whole_sub = s.strip_prefix("${").and_then(|s| s.strip_suffix('}')).filter(|s| !s.contains('}'));
            whole_sub.unwrap_or(s).to_owned()
        }
        // `!GetAtt [Table, Arn]`
        Yaml::Array(parts) if parts.iter().all(|p| p.as_str().is_some()) => {
            parts.iter().filter_map(Yaml::as_str).collect::<Vec<_>>().join(".")
        }
        other => panic!("{what}: expected a string, got {other:?}"),
    };
    match y {
        Yaml::Array(items) if items.iter().all(|i| matches!(i, Yaml::String(_))) => items.iter().map(one).collect(),
        other => vec![one(other)],
    }
}

/// Each function's grants by binary name, from its inline policy statements. Anything the check
/// cannot reason about (policy templates, managed policies, Deny, conditions) fails it.
fn template_grants() -> BTreeMap<String, Granted> {
    let doc = load_template();
    let resources = doc["Resources"].as_hash().expect("template Resources");
    let mut out = BTreeMap::new();
    for (name, res) in resources {
        if res["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let name = name.as_str().unwrap_or("?");
        let binary = res["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap_or_else(|| panic!("{name}: Binary"));
        let props = &res["Properties"];
        assert!(props["Role"].is_badvalue(), "{name}: give Policies, not a Role, so this check can read them");
        let mut granted = Granted::new();
        for (i, policy) in props["Policies"].as_vec().map(Vec::as_slice).unwrap_or_default().iter().enumerate() {
            let statements = policy["Statement"].as_vec().unwrap_or_else(|| {
                panic!("{name}.Policies[{i}]: only inline {{Version, Statement}} policies are checked")
            });
            for (j, st) in statements.iter().enumerate() {
                let what = format!("{name}.Policies[{i}].Statement[{j}]");
                let keys = st.as_hash().unwrap_or_else(|| panic!("{what}: a mapping")).keys();
                for key in keys.filter_map(Yaml::as_str) {
                    assert!(
                        ["Sid", "Effect", "Action", "Resource"].contains(&key),
                        "{what}: `{key}` is not supported here"
                    );
                }
                assert_eq!(st["Effect"].as_str(), Some("Allow"), "{what}: only Allow statements");
                for action in strings(&st["Action"], &format!("{what}.Action")) {
                    for resource in strings(&st["Resource"], &format!("{what}.Resource")) {
                        granted.insert((action.clone(), resource));
                    }
                }
            }
        }
        assert!(out.insert(binary.to_owned(), granted).is_none(), "two template functions build {binary}");
    }
    out
}

fn needed(function: &iam::Function) -> BTreeMap<(String, String), BTreeSet<Op>> {
    let key = |g: Grant| (g.action.to_owned(), canonical(g.resource));
    function.needs().into_iter().map(|(g, ops)| (key(g), ops)).collect()
}

fn allowed(function: &str) -> Granted {
    ALLOWED_EXTRA.iter().filter(|e| e.0 == function).map(|e| (e.1.to_owned(), e.2.to_owned())).collect()
}

#[test]
fn the_template_deploys_exactly_the_deployed_functions() {
    let in_template: BTreeSet<String> = template_grants().into_keys().collect();
    let declared: BTreeSet<String> = iam::FUNCTIONS.iter().filter(|f| f.deployed).map(|f| f.name.to_owned()).collect();
    assert_eq!(in_template, declared, "template.yaml functions vs shared::iam::FUNCTIONS (deployed ones)");
}

#[test]
fn each_function_is_granted_exactly_what_it_needs() {
    let template = template_grants();
    let mut problems = Vec::new();
    for function in iam::FUNCTIONS.iter().filter(|f| f.deployed) {
        let granted = template.get(function.name).cloned().unwrap_or_default();
        let needs = needed(function);
        for ((action, resource), ops) in &needs {
            if !granted.contains(&(action.clone(), resource.clone())) {
                let by: Vec<_> = ops.iter().map(|op| op.name()).collect();
                problems.push(format!(
                    "{}: missing {action} on {resource} (needed by {})",
                    function.name,
                    by.join(", ")
                ));
            }
        }
        let allowed = allowed(function.name);
        for (action, resource) in &granted {
            let key = (action.clone(), resource.clone());
            if !needs.contains_key(&key) && !allowed.contains(&key) {
                problems.push(format!(
                    "{}: grants {action} on {resource}, which none of its operations needs \
                     (remove it, or add it to ALLOWED_EXTRA with the reason)",
                    function.name
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "template.yaml's IAM disagrees with shared::iam (what each function reaches and what that needs):\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn allowed_extras_are_still_granted_and_say_why() {
    let template = template_grants();
    for (function, action, resource, why) in ALLOWED_EXTRA {
        assert!(!why.trim().is_empty(), "ALLOWED_EXTRA {function} {action}: give the reason");
        let granted = template.get(*function).is_some_and(|g| g.contains(&(action.to_string(), resource.to_string())));
        assert!(granted, "ALLOWED_EXTRA {function} {action} {resource}: not in the template any more, drop the entry");
    }
}
