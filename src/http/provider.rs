//! The rustls `CryptoProvider` the agent uses: ring's own pieces, chosen for
//! what a client that verifies a server needs, nothing hand-written.
//!
//! - Cipher suites: the three TLS 1.3 suites, and TLS 1.2 with ECDHE and an
//!   AEAD only (ureq turns rustls's `tls12` feature on, so its state machine is
//!   in the binary anyway; the suites cost little and keep servers and
//!   TLS-inspecting proxies that stop at 1.2 working, as docs/protocol.md
//!   promises "TLS 1.2 or 1.3").
//! - Key exchange: X25519 and P-256 (every TLS 1.3 server offers one of them;
//!   P-384 key exchange is left out).
//! - Certificate and handshake signatures: ECDSA P-256/P-384, RSA PKCS#1 and
//!   PSS (2048-8192 bits), Ed25519: what public and private CAs issue. The
//!   table is rustls's own for ring.
//! - No private-key loading (the agent presents no client certificate), which
//!   keeps ring's signing code out of the binary.
//!
//! ring's `default_provider()` would add P-384 key exchange and every signing
//! key type; docs/BENCHMARKS.md ("Levers") has the measured difference.

use rustls::crypto::ring::{cipher_suite as cs, kx_group};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::crypto::{CryptoProvider, GetRandomFailed, KeyProvider, SecureRandom};
use rustls::pki_types::PrivateKeyDer;
use rustls::sign::SigningKey;
use rustls::SignatureScheme;
use std::sync::{Arc, OnceLock};
use webpki::ring as alg;

static SIGNATURES: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[
        alg::ECDSA_P256_SHA256,
        alg::ECDSA_P256_SHA384,
        alg::ECDSA_P384_SHA256,
        alg::ECDSA_P384_SHA384,
        alg::ED25519,
        alg::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
        alg::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
        alg::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
        alg::RSA_PKCS1_2048_8192_SHA256,
        alg::RSA_PKCS1_2048_8192_SHA384,
        alg::RSA_PKCS1_2048_8192_SHA512,
        alg::RSA_PKCS1_2048_8192_SHA256_ABSENT_PARAMS,
        alg::RSA_PKCS1_2048_8192_SHA384_ABSENT_PARAMS,
        alg::RSA_PKCS1_2048_8192_SHA512_ABSENT_PARAMS,
    ],
    mapping: &[
        (
            SignatureScheme::ECDSA_NISTP384_SHA384,
            &[alg::ECDSA_P384_SHA384, alg::ECDSA_P256_SHA384],
        ),
        (
            SignatureScheme::ECDSA_NISTP256_SHA256,
            &[alg::ECDSA_P256_SHA256, alg::ECDSA_P384_SHA256],
        ),
        (SignatureScheme::ED25519, &[alg::ED25519]),
        (
            SignatureScheme::RSA_PSS_SHA512,
            &[alg::RSA_PSS_2048_8192_SHA512_LEGACY_KEY],
        ),
        (
            SignatureScheme::RSA_PSS_SHA384,
            &[alg::RSA_PSS_2048_8192_SHA384_LEGACY_KEY],
        ),
        (
            SignatureScheme::RSA_PSS_SHA256,
            &[alg::RSA_PSS_2048_8192_SHA256_LEGACY_KEY],
        ),
        (
            SignatureScheme::RSA_PKCS1_SHA512,
            &[alg::RSA_PKCS1_2048_8192_SHA512],
        ),
        (
            SignatureScheme::RSA_PKCS1_SHA384,
            &[alg::RSA_PKCS1_2048_8192_SHA384],
        ),
        (
            SignatureScheme::RSA_PKCS1_SHA256,
            &[alg::RSA_PKCS1_2048_8192_SHA256],
        ),
    ],
};

/// Randomness from ring's `SystemRandom` (getrandom(2)): glue, as rustls's
/// own ring provider does it.
#[derive(Debug)]
struct Random;

impl SecureRandom for Random {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        use ring::rand::SecureRandom as _;
        ring::rand::SystemRandom::new()
            .fill(buf)
            .map_err(|_| GetRandomFailed)
    }
}

/// The agent loads no private key into rustls (no client certificates).
#[derive(Debug)]
struct NoKeys;

impl KeyProvider for NoKeys {
    fn load_private_key(
        &self,
        _key_der: PrivateKeyDer<'static>,
    ) -> Result<Arc<dyn SigningKey>, rustls::Error> {
        Err(rustls::Error::General(
            "client certificates are not supported".into(),
        ))
    }
}

/// The provider, built once per process.
pub(super) fn provider() -> Arc<CryptoProvider> {
    static P: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| {
        Arc::new(CryptoProvider {
            cipher_suites: vec![
                cs::TLS13_AES_128_GCM_SHA256,
                cs::TLS13_AES_256_GCM_SHA384,
                cs::TLS13_CHACHA20_POLY1305_SHA256,
                cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
                cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
                cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
                cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
                cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
            ],
            kx_groups: vec![kx_group::X25519, kx_group::SECP256R1],
            signature_verification_algorithms: SIGNATURES,
            secure_random: &Random,
            key_provider: &NoKeys,
        })
    })
    .clone()
}

#[cfg(test)]
mod tests {
    use rustls::version::{TLS12, TLS13};

    #[test]
    fn the_provider_serves_tls13_and_tls12_with_x25519_first() {
        let p = super::provider();
        for v in [&TLS13, &TLS12] {
            assert!(
                rustls::ClientConfig::builder_with_provider(p.clone())
                    .with_protocol_versions(&[v])
                    .is_ok(),
                "no usable suites for {v:?}"
            );
        }
        let groups: Vec<_> = p.kx_groups.iter().map(|g| g.name()).collect();
        assert_eq!(
            groups,
            [rustls::NamedGroup::X25519, rustls::NamedGroup::secp256r1]
        );
    }
}
