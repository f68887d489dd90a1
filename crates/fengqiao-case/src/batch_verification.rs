//! Ed25519 batch verification with each distinct key's terms gathered into one.
//!
//! This is ed25519-dalek's `verify_batch` equation, `[-Σ zᵢsᵢ]B + Σ [zᵢ]Rᵢ + Σ [zᵢhᵢ]Aᵢ = 0` with
//! random 128-bit weights `zᵢ`, computed with one change: the `Aᵢ` of signatures by the same key
//! are one point, so their scalars are summed and the key enters the multiscalar multiplication
//! once. A received batch is dozens of events signed by a handful of offices, so this nearly
//! halves the points (2n + 1 becomes n + keys + 1), and the multiplication is most of the cost.
//! The equation is the same sum, so a batch passes exactly when ed25519-dalek's would; like it, a
//! signature's `s` must be canonical and its `R` must decompress. The weights are derived from a
//! hash of the whole batch (every `hᵢ` and `sᵢ`), as ed25519-dalek derives them from a transcript:
//! whoever made the signatures fixed them before the weights exist.

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use sha2::{Digest, Sha512};

/// One signature of a batch: the signed message, the signature's 64 bytes, and which of the
/// batch's keys signed it.
pub(crate) struct BatchEntry<'a> {
    pub message: &'a [u8],
    pub signature: [u8; 64],
    pub key: usize,
}

/// A signing key of a batch: its encoding (hashed into each `hᵢ`) and its point.
#[derive(Clone, Copy)]
pub(crate) struct BatchKey {
    pub encoded: [u8; 32],
    pub point: EdwardsPoint,
}

/// Whether every entry is a valid signature of its message by `keys[entry.key]`. On `false` it
/// does not say which failed. An entry naming a key that is not in `keys` fails the batch.
pub(crate) fn verify_batch_by_key(entries: &[BatchEntry<'_>], keys: &[BatchKey]) -> bool {
    if entries.is_empty() {
        return true;
    }
    let mut weights_seed = Sha512::new();
    weights_seed.update(b"fengqiao ed25519 batch weights v1");
    let mut challenges = Vec::with_capacity(entries.len());
    for entry in entries {
        let Some(key) = keys.get(entry.key) else {
            return false;
        };
        let challenge: [u8; 64] = Sha512::new()
            .chain_update(&entry.signature[..32])
            .chain_update(key.encoded)
            .chain_update(entry.message)
            .finalize()
            .into();
        weights_seed.update(challenge);
        challenges.push(Scalar::from_bytes_mod_order_wide(&challenge));
    }
    for entry in entries {
        weights_seed.update(&entry.signature[32..]);
    }
    let weights = batch_weights(&weights_seed.finalize().into(), entries.len());

    let mut basepoint_scalar = Scalar::ZERO;
    let mut key_scalars = vec![Scalar::ZERO; keys.len()];
    let mut commitments = Vec::with_capacity(entries.len());
    for ((entry, weight), challenge) in entries.iter().zip(&weights).zip(&challenges) {
        let (commitment_bytes, s_bytes) = signature_halves(&entry.signature);
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes)) else {
            return false;
        };
        let Some(commitment) = CompressedEdwardsY(commitment_bytes).decompress() else {
            return false;
        };
        basepoint_scalar -= weight * s;
        key_scalars[entry.key] += weight * challenge;
        commitments.push(commitment);
    }
    let sum = EdwardsPoint::vartime_multiscalar_mul(
        std::iter::once(&basepoint_scalar)
            .chain(&weights)
            .chain(&key_scalars),
        std::iter::once(ED25519_BASEPOINT_POINT)
            .chain(commitments)
            .chain(keys.iter().map(|key| key.point)),
    );
    sum.is_identity()
}

/// A signature's `R` (the commitment, a point's encoding) and `s` (a scalar's).
fn signature_halves(signature: &[u8; 64]) -> ([u8; 32], [u8; 32]) {
    let mut commitment = [0u8; 32];
    let mut s = [0u8; 32];
    commitment.copy_from_slice(&signature[..32]);
    s.copy_from_slice(&signature[32..]);
    (commitment, s)
}

/// `count` 128-bit weights drawn from `seed` (four per SHA-512 block).
fn batch_weights(seed: &[u8; 64], count: usize) -> Vec<Scalar> {
    let mut weights = Vec::with_capacity(count);
    let mut block_number: u64 = 0;
    while weights.len() < count {
        let block = Sha512::new()
            .chain_update(seed)
            .chain_update(block_number.to_le_bytes())
            .finalize();
        block_number += 1;
        for chunk in block.chunks_exact(16) {
            if weights.len() == count {
                break;
            }
            let mut weight = [0u8; 16];
            weight.copy_from_slice(chunk);
            weights.push(Scalar::from(u128::from_le_bytes(weight)));
        }
    }
    weights
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer, SigningKey};

    use super::*;

    fn key(seed: u8) -> (SigningKey, BatchKey) {
        let signing = SigningKey::from_bytes(&[seed; 32]);
        let verifying = signing.verifying_key();
        (
            signing,
            BatchKey {
                encoded: verifying.to_bytes(),
                point: verifying.to_edwards(),
            },
        )
    }

    /// Messages, their signatures, which key signed each, and the keys.
    type SignedBatch = (Vec<Vec<u8>>, Vec<[u8; 64]>, Vec<usize>, Vec<BatchKey>);

    /// Messages signed in turn by three keys, several each.
    fn signed_batch() -> SignedBatch {
        let keys: Vec<(SigningKey, BatchKey)> = (1..=3).map(key).collect();
        let messages: Vec<Vec<u8>> = (0..20)
            .map(|index| format!("事件 {index}").into_bytes())
            .collect();
        let signers: Vec<usize> = (0..messages.len()).map(|index| index % 3).collect();
        let signatures = messages
            .iter()
            .zip(&signers)
            .map(|(message, signer)| keys[*signer].0.sign(message).to_bytes())
            .collect();
        let batch_keys = keys.iter().map(|(_, key)| *key).collect();
        (messages, signatures, signers, batch_keys)
    }

    fn entries<'a>(
        messages: &'a [Vec<u8>],
        signatures: &[[u8; 64]],
        signers: &[usize],
    ) -> Vec<BatchEntry<'a>> {
        messages
            .iter()
            .zip(signatures)
            .zip(signers)
            .map(|((message, signature), key)| BatchEntry {
                message,
                signature: *signature,
                key: *key,
            })
            .collect()
    }

    #[test]
    fn honest_signatures_pass_and_agree_with_ed25519_dalek() {
        let (messages, signatures, signers, keys) = signed_batch();
        assert!(verify_batch_by_key(
            &entries(&messages, &signatures, &signers),
            &keys
        ));
        let slices: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        let dalek_signatures: Vec<ed25519_dalek::Signature> = signatures
            .iter()
            .map(ed25519_dalek::Signature::from_bytes)
            .collect();
        let dalek_keys: Vec<ed25519_dalek::VerifyingKey> = signers
            .iter()
            .map(|signer| {
                ed25519_dalek::VerifyingKey::from_bytes(&keys[*signer].encoded)
                    .expect("a valid key")
            })
            .collect();
        assert!(ed25519_dalek::verify_batch(&slices, &dalek_signatures, &dalek_keys).is_ok());
        assert!(verify_batch_by_key(&[], &keys));
    }

    #[test]
    fn any_altered_message_signature_or_signer_fails_the_batch() {
        let (messages, signatures, signers, keys) = signed_batch();
        for index in [0, 7, 19] {
            let mut altered = messages.clone();
            altered[index].push(b'!');
            assert!(!verify_batch_by_key(
                &entries(&altered, &signatures, &signers),
                &keys
            ));

            for byte in [0, 31, 32, 63] {
                let mut forged = signatures.clone();
                forged[index][byte] ^= 1;
                assert!(!verify_batch_by_key(
                    &entries(&messages, &forged, &signers),
                    &keys
                ));
            }

            // Signed by one key, claimed for another that also signs in the batch.
            let mut misattributed = signers.clone();
            misattributed[index] = (signers[index] + 1) % 3;
            assert!(!verify_batch_by_key(
                &entries(&messages, &signatures, &misattributed),
                &keys
            ));

            let mut unknown = signers.clone();
            unknown[index] = keys.len();
            assert!(!verify_batch_by_key(
                &entries(&messages, &signatures, &unknown),
                &keys
            ));
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        /// Whatever the batch (its size, how many keys share it, one byte of one message or
        /// signature changed or not), it passes exactly when every signature verifies alone.
        #[test]
        fn a_batch_passes_exactly_when_each_signature_verifies_alone(
            key_count in 1usize..5,
            signers in proptest::collection::vec(0usize..5, 1..24),
            damage in proptest::option::of((0usize..24, 0usize..96, 1u8..=255)),
        ) {
            let keys: Vec<(SigningKey, BatchKey)> =
                (0..key_count).map(|index| key(index as u8 + 1)).collect();
            let signers: Vec<usize> = signers.iter().map(|signer| signer % key_count).collect();
            let mut messages: Vec<Vec<u8>> = (0..signers.len())
                .map(|index| format!("案件 {index} 的事件").into_bytes())
                .collect();
            let mut signatures: Vec<[u8; 64]> = messages
                .iter()
                .zip(&signers)
                .map(|(message, signer)| keys[*signer].0.sign(message).to_bytes())
                .collect();
            if let Some((entry, byte, flip)) = damage {
                let entry = entry % signers.len();
                if byte < 64 {
                    signatures[entry][byte] ^= flip;
                } else {
                    let message = &mut messages[entry];
                    let position = (byte - 64) % message.len();
                    message[position] ^= flip;
                }
            }
            let each_alone = messages.iter().zip(&signatures).zip(&signers).all(
                |((message, signature), signer)| {
                    keys[*signer]
                        .0
                        .verifying_key()
                        .verify_strict(message, &ed25519_dalek::Signature::from_bytes(signature))
                        .is_ok()
                },
            );
            let batch_keys: Vec<BatchKey> = keys.iter().map(|(_, key)| *key).collect();
            proptest::prop_assert_eq!(
                verify_batch_by_key(&entries(&messages, &signatures, &signers), &batch_keys),
                each_alone
            );
        }
    }

    #[test]
    fn a_non_canonical_s_fails_even_though_it_is_the_same_scalar() {
        let (messages, signatures, signers, keys) = signed_batch();
        // s + ℓ is the same scalar mod ℓ, so the equation would hold: only the canonical check
        // refuses it, as ed25519-dalek does (malleability).
        let mut malleable = signatures.clone();
        let s_bytes: [u8; 32] = malleable[4][32..].try_into().expect("32 bytes");
        let s = Scalar::from_canonical_bytes(s_bytes).expect("a signature's s is canonical");
        // ℓ = 2^252 + 27742317777372353535851937790883648493, little-endian.
        let order_bytes: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut sum = [0u8; 32];
        let mut carry = 0u16;
        for (index, (a, b)) in s.to_bytes().iter().zip(order_bytes.iter()).enumerate() {
            let total = u16::from(*a) + u16::from(*b) + carry;
            sum[index] = total as u8;
            carry = total >> 8;
        }
        assert_eq!(carry, 0, "s + ℓ fits in 32 bytes");
        malleable[4][32..].copy_from_slice(&sum);
        assert!(!verify_batch_by_key(
            &entries(&messages, &malleable, &signers),
            &keys
        ));
    }
}
