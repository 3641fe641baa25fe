//! Release signatures in OpenBSD signify's format: a public key is
//! `untrusted comment: ...` then base64 of `"Ed" || keynum(8) || pk(32)`; a
//! signature is the same with `sig(64)` in place of the key, a pure Ed25519
//! signature over the whole signed file. `ring` checks the signature; this
//! file only takes the two small text formats apart. It must not hold a
//! private key: signing is `scripts/sign` (signify-openbsd).

use base64::Engine;
use std::fmt;

const ALG: &[u8; 2] = b"Ed";

/// A trusted signify public key.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub keynum: [u8; 8],
    pub key: [u8; 32],
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", hex(&self.keynum))
    }
}

/// A parsed signature file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    pub keynum: [u8; 8],
    pub sig: [u8; 64],
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The base64 line of a signify file: the text may be the whole file
/// (comment line first) or the base64 line alone.
fn payload(text: &str, what: &str, len: usize) -> Result<Vec<u8>, String> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let mut line = lines.next().ok_or_else(|| format!("{what} is empty"))?;
    if line.starts_with("untrusted comment:") {
        line = lines
            .next()
            .ok_or_else(|| format!("{what} has a comment line but no data line"))?;
    }
    let data = base64::engine::general_purpose::STANDARD
        .decode(line)
        .map_err(|_| format!("{what} is not valid base64"))?;
    if data.len() != len || &data[..2] != ALG {
        return Err(format!(
            "{what} is not a signify Ed25519 {} ({} bytes, expected {len} starting with \"Ed\")",
            if len == 42 { "public key" } else { "signature" },
            data.len()
        ));
    }
    Ok(data)
}

impl PublicKey {
    pub fn parse(text: &str) -> Result<PublicKey, String> {
        let d = payload(text, "public key", 42)?;
        let mut keynum = [0u8; 8];
        let mut key = [0u8; 32];
        keynum.copy_from_slice(&d[2..10]);
        key.copy_from_slice(&d[10..42]);
        Ok(PublicKey { keynum, key })
    }

    pub fn id(&self) -> String {
        hex(&self.keynum)
    }
}

impl Signature {
    pub fn parse(text: &str) -> Result<Signature, String> {
        let d = payload(text, "signature", 74)?;
        let mut keynum = [0u8; 8];
        let mut sig = [0u8; 64];
        keynum.copy_from_slice(&d[2..10]);
        sig.copy_from_slice(&d[10..74]);
        Ok(Signature { keynum, sig })
    }
}

/// Check `sig_text` over `message` against the trusted `keys`: the key is
/// chosen by key number (so a rotated key set holds old and new side by
/// side); an unknown key number and a signature that does not verify are
/// told apart.
pub fn verify(message: &[u8], sig_text: &str, keys: &[PublicKey]) -> Result<String, String> {
    let sig = Signature::parse(sig_text)?;
    let key = keys
        .iter()
        .find(|k| k.keynum == sig.keynum)
        .ok_or_else(|| {
            format!(
                "signed by unknown key {} (trusted: {})",
                hex(&sig.keynum),
                if keys.is_empty() {
                    "none configured".to_string()
                } else {
                    keys.iter().map(|k| k.id()).collect::<Vec<_>>().join(", ")
                }
            )
        })?;
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &key.key)
        .verify(message, &sig.sig)
        .map_err(|_| {
            format!(
                "bad signature (key {}): the file was altered or not signed by it",
                key.id()
            )
        })?;
    Ok(key.id())
}

#[cfg(test)]
pub(crate) mod testkey {
    //! Test-only signify keys made with ring (tests make their own keys;
    //! none is ever committed).
    use base64::Engine;
    use ring::signature::KeyPair;

    pub struct TestKey {
        pair: ring::signature::Ed25519KeyPair,
        pub keynum: [u8; 8],
    }

    impl TestKey {
        pub fn new(keynum: u8) -> TestKey {
            let rng = ring::rand::SystemRandom::new();
            let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).expect("keygen");
            let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key");
            TestKey {
                pair,
                keynum: [keynum; 8],
            }
        }
        pub fn public(&self) -> String {
            let mut d = b"Ed".to_vec();
            d.extend_from_slice(&self.keynum);
            d.extend_from_slice(self.pair.public_key().as_ref());
            format!(
                "untrusted comment: test public key\n{}\n",
                base64::engine::general_purpose::STANDARD.encode(d)
            )
        }
        pub fn sign(&self, msg: &[u8]) -> String {
            let mut d = b"Ed".to_vec();
            d.extend_from_slice(&self.keynum);
            d.extend_from_slice(self.pair.sign(msg).as_ref());
            format!(
                "untrusted comment: verify with test key\n{}\n",
                base64::engine::general_purpose::STANDARD.encode(d)
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testkey::TestKey;
    use super::*;

    #[test]
    fn signature_table() {
        let a = TestKey::new(1);
        let b = TestKey::new(2);
        let c = TestKey::new(3);
        let pa = PublicKey::parse(&a.public()).unwrap();
        let pb = PublicKey::parse(&b.public()).unwrap();
        let msg = b"{\"version\":\"1.2.3\"}\n".to_vec();
        let good = a.sign(&msg);
        let mut flipped = msg.clone();
        flipped[3] ^= 1;
        let by_c = c.sign(&msg);
        // Same key number as a, different key: a forged key id.
        let mut forged = TestKey::new(9);
        forged.keynum = a.keynum;
        let by_forged = forged.sign(&msg);
        let truncated = good[..good.len() - 12].to_string();
        let by_b = b.sign(&msg);
        type Case<'a> = (
            &'a str,
            &'a [u8],
            &'a str,
            Vec<PublicKey>,
            Result<(), &'a str>,
        );
        let cases: Vec<Case> = vec![
            ("good", &msg, &good, vec![pa.clone()], Ok(())),
            (
                "good among two keys",
                &msg,
                &good,
                vec![pb.clone(), pa.clone()],
                Ok(()),
            ),
            (
                "flipped byte",
                &flipped,
                &good,
                vec![pa.clone()],
                Err("bad signature"),
            ),
            (
                "wrong key (unknown id)",
                &msg,
                &by_c,
                vec![pa.clone(), pb.clone()],
                Err("unknown key"),
            ),
            (
                "forged key id",
                &msg,
                &by_forged,
                vec![pa.clone()],
                Err("bad signature"),
            ),
            (
                "truncated signature",
                &msg,
                &truncated,
                vec![pa.clone()],
                Err("signature"),
            ),
            (
                "empty signature",
                &msg,
                "",
                vec![pa.clone()],
                Err("signature is empty"),
            ),
            ("no keys", &msg, &good, vec![], Err("none configured")),
            // Rotation: a release signed by the new key b verifies once b is
            // trusted beside a, and not with a alone.
            (
                "rotated key trusted",
                &msg,
                &by_b,
                vec![pa.clone(), pb.clone()],
                Ok(()),
            ),
            (
                "rotated key not yet trusted",
                &msg,
                &by_b,
                vec![pa.clone()],
                Err("unknown key"),
            ),
        ];
        for (name, m, s, keys, want) in cases {
            let got = verify(m, s, &keys);
            match (want, got) {
                (Ok(()), Ok(_)) => {}
                (Err(w), Err(e)) => assert!(e.contains(w), "{name}: {e:?} lacks {w:?}"),
                (w, g) => panic!("{name}: wanted {w:?}, got {g:?}"),
            }
        }
    }

    #[test]
    fn key_parsing() {
        let a = TestKey::new(7);
        let text = a.public();
        let k = PublicKey::parse(&text).unwrap();
        assert_eq!(k.id(), "0707070707070707");
        // The base64 line alone is accepted too.
        let line = text.lines().nth(1).unwrap();
        assert_eq!(PublicKey::parse(line).unwrap(), k);
        for bad in ["", "untrusted comment: x", "!!!", "RWQ=", &a.sign(b"x")] {
            assert!(PublicKey::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
