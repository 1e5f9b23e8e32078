//! template.yaml's alarms cover what docs/deploy.md says they cover: every function's throttles,
//! the errors of the two functions no route answers for (the route functions' faults are the
//! API's 5xx), the API's 5xx, the dead-letter queue and compaction lag; and every alarm
//! notifies the same optional targets, so setting AlarmTopicArn or AlarmEmail reaches them all.

use std::collections::BTreeSet;
use std::path::Path;

use yaml_rust2::{Yaml, YamlLoader};

fn template() -> Yaml {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    YamlLoader::load_from_str(&text).expect("template.yaml is YAML").remove(0)
}

fn of_type<'a>(doc: &'a Yaml, ty: &str) -> Vec<(String, &'a Yaml)> {
    let resources = doc["Resources"].as_hash().expect("Resources");
    resources
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(ty))
        .map(|(k, r)| (k.as_str().unwrap_or_default().to_owned(), r))
        .collect()
}

/// (metric, the resource its first dimension names) of every alarm.
fn watched(doc: &Yaml) -> BTreeSet<(String, String)> {
    of_type(doc, "AWS::CloudWatch::Alarm")
        .into_iter()
        .map(|(name, a)| {
            let p = &a["Properties"];
            let target = p["Dimensions"][0]["Value"].as_str().unwrap_or_else(|| panic!("{name}: dimension"));
            (p["MetricName"].as_str().unwrap_or_else(|| panic!("{name}: metric")).to_owned(), target.to_owned())
        })
        .collect()
}

#[test]
fn every_function_and_failure_path_has_its_alarm() {
    let doc = template();
    let got = watched(&doc);
    let mut want: BTreeSet<(String, String)> = of_type(&doc, "AWS::Serverless::Function")
        .into_iter()
        .map(|(name, _)| ("Throttles".to_owned(), name))
        .collect();
    for (metric, target) in [
        ("Errors", "JobsWorkerFunction"),
        ("Errors", "CompactTablesFunction"),
        ("5xx", "HttpApi"),
        ("WorkspacesNotReached", "CompactTablesFunction"),
    ] {
        want.insert((metric.to_owned(), target.to_owned()));
    }
    let missing: Vec<_> = want.difference(&got).collect();
    assert!(missing.is_empty(), "alarms missing from template.yaml: {missing:?}");
    // The dead-letter queue's, whose dimension is the queue's name.
    assert!(got.iter().any(|(m, _)| m == "ApproximateNumberOfMessagesVisible"), "the dead-letter alarm");
}

#[test]
fn every_alarm_notifies_the_optional_targets_on_alarm_and_ok() {
    let doc = template();
    for (name, alarm) in of_type(&doc, "AWS::CloudWatch::Alarm") {
        for key in ["AlarmActions", "OKActions"] {
            let actions = alarm["Properties"][key].as_vec().unwrap_or_else(|| panic!("{name}: {key}"));
            assert_eq!(actions.len(), 2, "{name}: {key} lists the topic parameter and the email topic");
        }
    }
}

#[test]
fn the_lag_alarm_reads_the_metric_compaction_emits() {
    let doc = template();
    let (_, lag) = of_type(&doc, "AWS::CloudWatch::Alarm")
        .into_iter()
        .find(|(_, a)| a["Properties"]["MetricName"].as_str() == Some("WorkspacesNotReached"))
        .expect("the lag alarm");
    assert_eq!(lag["Properties"]["Namespace"].as_str(), Some(adapter_dynamodb::compaction::METRICS_NAMESPACE));
    // No run at all is lag too.
    assert_eq!(lag["Properties"]["TreatMissingData"].as_str(), Some("breaching"));
}
