//! Signed links for the local bundle folder: the stand-in for S3's presigned URLs, so a client
//! can fetch or upload a bundle with a plain HTTP request and no token, locally as in AWS.
//!
//! A link is `{public_base}/jarvispy/_local/{key}?expires={unix}&signature={hex}` where
//! the signature is HMAC-SHA256 over `"<METHOD>\n<key>\n<expires>"`. Keys are limited to
//! `[A-Za-z0-9_.@+/-]` (see [`super::check_key`]), so they go into the path as they are.
//!
//! Links of a parted upload carry more in their query (`uploadId`, `partNumber`, `size`, as
//! S3's presigned part URLs carry the first two and sign the length): each such pair is signed
//! too, as `"\n<name>=<value>"` after the expiry, so a part link cannot be turned into another
//! part's, another upload's or another length's.

use std::fmt;

use hmac::digest::Key;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// The path every local bundle link starts with (after `public_base`); the key follows it.
/// Object keys follow it as they are: bundle keys start with `bundles/`, so links read
/// `/jarvispy/_local/bundles/<tenant>/<bundle>.json`, the local-only route of the route table.
pub const LOCAL_BUNDLE_PATH: &str = "/jarvispy/_local/";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The link was genuine but its time is up (the client should ask for a new one).
    #[error("the link has expired")]
    Expired,
    /// Wrong signature, or signed for another key, method or expiry: never valid.
    #[error("the link's signature is not valid")]
    BadSignature,
}

/// Signs and verifies local bundle links with one secret (`WORKSPACES_LINK_SECRET`).
#[derive(Clone)]
pub struct LinkSigner {
    /// The secret already normalised to HMAC's block-sized key, so building a MAC cannot fail.
    key: Key<HmacSha256>,
}

impl fmt::Debug for LinkSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LinkSigner(<secret>)")
    }
}

impl LinkSigner {
    pub fn new(secret: impl AsRef<[u8]>) -> Self {
        // RFC 2104's own key preparation (hash a key longer than a block, zero-pad the rest),
        // done here so the MAC is the standard HMAC of `secret` with no fallible constructor.
        let secret = secret.as_ref();
        let mut key = Key::<HmacSha256>::default();
        if secret.len() > key.len() {
            let digest = Sha256::digest(secret);
            key[..digest.len()].copy_from_slice(&digest);
        } else {
            key[..secret.len()].copy_from_slice(secret);
        }
        Self { key }
    }

    /// A signer with a random secret, for deployments whose links S3 presigns (it never signs
    /// anything there, and no configured secret is needed).
    pub fn random() -> Self {
        Self::new(rand::random::<[u8; 32]>())
    }

    fn mac(&self, method: &str, key: &str, extra: &[(&str, String)], expires_at: i64) -> HmacSha256 {
        let mut mac = <HmacSha256 as hmac::digest::KeyInit>::new(&self.key);
        mac.update(format!("{}\n{key}\n{expires_at}", method.to_ascii_uppercase()).as_bytes());
        for (name, value) in extra {
            mac.update(format!("\n{name}={value}").as_bytes());
        }
        mac
    }

    /// The hex signature of `method` on `key` until `expires_at` (unix seconds).
    pub fn sign(&self, method: &str, key: &str, expires_at: i64) -> String {
        self.sign_with(method, key, &[], expires_at)
    }

    /// Same, also over the query pairs `extra` (names and values in the URL's characters).
    pub fn sign_with(&self, method: &str, key: &str, extra: &[(&str, String)], expires_at: i64) -> String {
        hex::encode(self.mac(method, key, extra, expires_at).finalize().into_bytes())
    }

    /// The full link (see the module doc); `public_base` may end with a slash or not.
    pub fn url(&self, method: &str, key: &str, expires_at: i64, public_base: &str) -> String {
        self.url_with(method, key, &[], expires_at, public_base)
    }

    /// A link whose query also carries (and whose signature covers) `extra`.
    pub fn url_with(
        &self,
        method: &str,
        key: &str,
        extra: &[(&str, String)],
        expires_at: i64,
        public_base: &str,
    ) -> String {
        let base = public_base.trim_end_matches('/');
        let signature = self.sign_with(method, key, extra, expires_at);
        let query: String = extra.iter().map(|(name, value)| format!("{name}={value}&")).collect();
        format!("{base}{LOCAL_BUNDLE_PATH}{key}?{query}expires={expires_at}&signature={signature}")
    }

    /// Checks a link's parts at time `now` (unix seconds). The signature is compared in constant
    /// time; a forged link is `BadSignature` whatever its expiry, so expiry leaks nothing.
    pub fn verify(&self, method: &str, key: &str, expires_at: i64, signature: &str, now: i64) -> Result<(), LinkError> {
        self.verify_with(method, key, &[], expires_at, signature, now)
    }

    /// [`verify`](Self::verify) of a link made by [`url_with`](Self::url_with) with `extra`.
    pub fn verify_with(
        &self,
        method: &str,
        key: &str,
        extra: &[(&str, String)],
        expires_at: i64,
        signature: &str,
        now: i64,
    ) -> Result<(), LinkError> {
        let given = hex::decode(signature).map_err(|_| LinkError::BadSignature)?;
        self.mac(method, key, extra, expires_at).verify_slice(&given).map_err(|_| LinkError::BadSignature)?;
        if now >= expires_at {
            return Err(LinkError::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_verifies_until_it_expires() {
        let signer = LinkSigner::new("s3cret");
        let sig = signer.sign("GET", "exports/a.json", 100);
        assert_eq!(signer.verify("GET", "exports/a.json", 100, &sig, 99), Ok(()));
        assert_eq!(signer.verify("get", "exports/a.json", 100, &sig, 99), Ok(()));
        assert_eq!(signer.verify("GET", "exports/a.json", 100, &sig, 100), Err(LinkError::Expired));
    }

    #[test]
    fn any_change_breaks_the_signature() {
        let signer = LinkSigner::new("s3cret");
        let sig = signer.sign("GET", "exports/a.json", 100);
        assert_eq!(signer.verify("PUT", "exports/a.json", 100, &sig, 0), Err(LinkError::BadSignature));
        assert_eq!(signer.verify("GET", "exports/b.json", 100, &sig, 0), Err(LinkError::BadSignature));
        assert_eq!(signer.verify("GET", "exports/a.json", 101, &sig, 0), Err(LinkError::BadSignature));
        assert_eq!(signer.verify("GET", "exports/a.json", 100, "zz", 0), Err(LinkError::BadSignature));
        assert_eq!(
            LinkSigner::new("other").verify("GET", "exports/a.json", 100, &sig, 0),
            Err(LinkError::BadSignature)
        );
    }

    #[test]
    fn part_links_sign_their_query_too() {
        let signer = LinkSigner::new("s3cret");
        let part = |n: &str, size: &str| {
            vec![("uploadId", "u1".to_owned()), ("partNumber", n.to_owned()), ("size", size.to_owned())]
        };
        let sig = signer.sign_with("PUT", "k", &part("1", "5"), 100);
        assert_eq!(signer.verify_with("PUT", "k", &part("1", "5"), 100, &sig, 0), Ok(()));
        assert_eq!(signer.verify_with("PUT", "k", &part("2", "5"), 100, &sig, 0), Err(LinkError::BadSignature));
        assert_eq!(signer.verify_with("PUT", "k", &part("1", "6"), 100, &sig, 0), Err(LinkError::BadSignature));
        // Nor is it a link to PUT the whole object.
        assert_eq!(signer.verify("PUT", "k", 100, &sig, 0), Err(LinkError::BadSignature));
        let url = signer.url_with("PUT", "k", &part("1", "5"), 100, "http://h");
        assert!(url.starts_with("http://h/jarvispy/_local/k?uploadId=u1&partNumber=1&size=5&expires=100&signature="));
    }

    #[test]
    fn it_is_standard_hmac_for_short_and_long_secrets() {
        for secret in [b"k".to_vec(), vec![7u8; 64], vec![9u8; 200]] {
            let mut mac = <HmacSha256 as Mac>::new_from_slice(&secret).unwrap();
            mac.update(b"GET\nk\n5");
            assert_eq!(LinkSigner::new(&secret).sign("GET", "k", 5), hex::encode(mac.finalize().into_bytes()));
        }
    }

    #[test]
    fn urls_have_the_documented_shape() {
        let url = LinkSigner::new("s").url("GET", "bundles/a/b.json", 7, "http://127.0.0.1:9000/");
        assert!(
            url.starts_with("http://127.0.0.1:9000/jarvispy/_local/bundles/a/b.json?expires=7&signature="),
            "{url}"
        );
    }
}
