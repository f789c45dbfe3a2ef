//! Evidence that the audit trail was not changed: its events are the leaves of an RFC 6962 Merkle
//! tree per audit partition, a notary signs the tree's heads as C2SP checkpoints, and a record's
//! proof bundle can be checked offline against them. See `docs/evidence.md`.

mod bundle;
mod merkle;
mod note;
mod seal;
mod timestamp;
mod trail;

pub use bundle::{
    BUNDLE_FORMAT, Bundle, BundleError, CheckpointRecord, ProvenEvent, Verified, encode_bytes,
    encode_hash, origin,
};
pub use merkle::{
    Frontier, Hash, consistency_proof, empty_root, inclusion_proof, leaf_hash, node_hash, root,
    verify_consistency, verify_inclusion,
};
pub use note::{Checkpoint, KeyError, NoteError, PublicKey, SigningKey};
pub use seal::{AuditKey, AuditKeyError, SEAL_HEADER, SealCheck, event_leaf, leaf_data};

pub use timestamp::{
    Stamp, TimestampError, certificates_from_pem, timestamp_request, token_from_response,
    verify_token,
};
pub use trail::{Trail, TrailReport};

/// The topic the notary writes checkpoints to.
pub const CHECKPOINT_TOPIC: &str = "_mekong.checkpoints";
