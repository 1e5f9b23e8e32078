//! Several verification keys at once (`WORKSPACES_JWT_KEYS`), chosen by the token's `kid`: what
//! lets keys rotate without downtime, and the ways a token can pick the wrong one.

use std::collections::HashMap;

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use shared::auth::Verifier;
use shared::config::{Config, JwtConfig};

fn key(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/fixtures/keys/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn claims() -> Value {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    json!({"sub": "1", "username": "ann", "organization": "acme", "exp": now + 600})
}

fn signed(alg: Algorithm, kid: Option<&str>, enc: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    encode(&header, &claims(), enc).unwrap()
}

fn hs(secret: &str) -> EncodingKey {
    EncodingKey::from_secret(secret.as_bytes())
}

fn rsa_private() -> EncodingKey {
    EncodingKey::from_rsa_pem(key("rsa-private.pem").as_bytes()).unwrap()
}

fn config(vars: &[(&str, String)]) -> Result<Config, shared::config::ConfigError> {
    // Local bundle links need their own secret when no WORKSPACES_JWT_SECRET is there to derive it.
    let mut env: HashMap<String, String> = HashMap::from([("WORKSPACES_LINK_SECRET".into(), "links".into())]);
    env.extend(vars.iter().map(|(k, v)| (k.to_string(), v.clone())));
    Config::from_map(&env)
}

/// The rotation in progress: HS256 "2026-11" (old) and "2026-12" (new), and an RS256 key.
fn rotating() -> Verifier {
    let keys = json!([
        {"kid": "2026-11", "alg": "HS256", "secret": "old-secret"},
        {"kid": "2026-12", "alg": "HS256", "secret": "new-secret"},
        {"kid": "rsa-1", "alg": "RS256", "pem": key("rsa-public.pem")},
    ]);
    let cfg = config(&[("WORKSPACES_JWT_KEYS", keys.to_string())]).unwrap();
    Verifier::from_config(&cfg.jwt).unwrap()
}

fn refused(v: &Verifier, token: &str) -> String {
    let e = v.verify(token).expect_err("the token must be refused");
    assert_eq!(e.status, 401, "{}", e.message);
    e.message
}

#[test]
fn old_and_new_kid_both_verify_during_a_rotation() {
    let v = rotating();
    for (kid, secret) in [("2026-11", "old-secret"), ("2026-12", "new-secret")] {
        let p = v.verify(&signed(Algorithm::HS256, Some(kid), &hs(secret))).unwrap();
        assert_eq!((p.organization.as_str(), p.username.as_str()), ("acme", "ann"));
    }
    assert!(v.verify(&signed(Algorithm::RS256, Some("rsa-1"), &rsa_private())).is_ok());
}

#[test]
fn an_unknown_kid_is_401_naming_it() {
    let msg = refused(&rotating(), &signed(Algorithm::HS256, Some("2025-01"), &hs("old-secret")));
    assert!(msg.contains("'2025-01' is not one of the configured keys"), "{msg}");
}

#[test]
fn a_token_signed_with_another_kids_key_fails() {
    let msg = refused(&rotating(), &signed(Algorithm::HS256, Some("2026-12"), &hs("old-secret")));
    assert!(msg.contains("signature is invalid"), "{msg}");
}

#[test]
fn hs256_signed_with_a_public_keys_text_is_refused() {
    // The classic confusion: the attacker knows the public PEM and uses it as an HMAC secret.
    let msg = refused(&rotating(), &signed(Algorithm::HS256, Some("rsa-1"), &hs(&key("rsa-public.pem"))));
    assert!(msg.contains("not accepted"), "{msg}");
}

#[test]
fn a_token_without_kid_needs_an_unnamed_key_or_a_single_key() {
    let msg = refused(&rotating(), &signed(Algorithm::HS256, None, &hs("new-secret")));
    assert!(msg.contains("no 'kid'"), "{msg}");
    // One listed key: it is the only choice, so a token without kid is checked against it.
    let one = json!([{"kid": "k1", "alg": "HS256", "secret": "only"}]).to_string();
    let v = Verifier::from_config(&config(&[("WORKSPACES_JWT_KEYS", one.clone())]).unwrap().jwt).unwrap();
    assert!(v.verify(&signed(Algorithm::HS256, None, &hs("only"))).is_ok());
    // Beside the legacy secret, a token without kid goes to that secret (what tokens did before).
    let both = config(&[("WORKSPACES_JWT_KEYS", one), ("WORKSPACES_JWT_SECRET", "legacy".into())]).unwrap();
    let v = Verifier::from_config(&both.jwt).unwrap();
    assert!(v.verify(&signed(Algorithm::HS256, None, &hs("legacy"))).is_ok());
    assert!(v.verify(&signed(Algorithm::HS256, Some("k1"), &hs("only"))).is_ok());
    refused(&v, &signed(Algorithm::HS256, None, &hs("only")));
}

#[test]
fn without_listed_keys_a_tokens_kid_is_ignored_as_before() {
    let cfg = JwtConfig { secret: Some("legacy".into()), ..JwtConfig::default() };
    let v = Verifier::from_config(&cfg).unwrap();
    assert!(v.verify(&signed(Algorithm::HS256, Some("anything"), &hs("legacy"))).is_ok());
}

#[test]
fn bad_key_lists_stop_the_function_naming_the_variable() {
    let pem = key("rsa-public.pem");
    for (keys, needle) in [
        ("not json".to_owned(), "not a JSON list"),
        ("[]".to_owned(), "empty"),
        (json!([{"kid": "", "alg": "HS256", "secret": "s"}]).to_string(), "empty \"kid\""),
        (
            json!([{"kid": "a", "alg": "HS256", "secret": "s"}, {"kid": "a", "alg": "HS256", "secret": "t"}])
                .to_string(),
            "twice",
        ),
        (json!([{"kid": "a", "alg": "HS256", "pem": pem}]).to_string(), "HS256 takes"),
        (json!([{"kid": "a", "alg": "RS256", "secret": "s"}]).to_string(), "RS256 takes"),
        (json!([{"kid": "a", "alg": "ES256", "pem": pem}]).to_string(), "RS256 key"),
        (json!([{"kid": "a", "alg": "none", "secret": "s"}]).to_string(), "not one of"),
        (json!([{"kid": "a", "alg": "RS256", "pem": "-----BEGIN nonsense"}]).to_string(), "not an RSA or EC"),
    ] {
        let e = config(&[("WORKSPACES_JWT_KEYS", keys.clone())])
            .and_then(|c| Verifier::from_config(&c.jwt).map(|_| ()))
            .expect_err(&keys);
        assert_eq!(e.var, "WORKSPACES_JWT_KEYS");
        assert!(e.message.contains(needle), "{keys}: {}", e.message);
    }
}

#[test]
fn secrets_never_print() {
    let keys = json!([{"kid": "k1", "alg": "HS256", "secret": "hunter2-listed"}]).to_string();
    let cfg = config(&[
        ("WORKSPACES_JWT_KEYS", keys),
        ("WORKSPACES_JWT_SECRET", "hunter2-legacy".into()),
        ("WORKSPACES_LINK_SECRET", "hunter2-links".into()),
    ])
    .unwrap();
    let dump = format!("{cfg:?} {:?}", Verifier::from_config(&cfg.jwt).unwrap());
    assert!(!dump.contains("hunter2"), "{dump}");
    assert!(dump.contains("k1"), "the kids are named: {dump}");
    // A malformed list is reported by position, not by echoing what may be a secret.
    let e = config(&[("WORKSPACES_JWT_KEYS", r#"[{"kid": "k", "alg": "HS256", "secret": 5, "hunter2": 1}]"#.into())])
        .expect_err("malformed");
    assert!(!e.message.contains("hunter2"), "{}", e.message);
}
