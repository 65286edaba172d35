-- Secrets at rest (version 9): each value sealed by its own data key (AES-256-GCM), the data
-- key sealed by the key-encryption key named by kek_id, which is never stored here. Both
-- ciphertexts are base64 text: nonce || ciphertext || tag.
CREATE TABLE secrets (
    name TEXT PRIMARY KEY,
    version BIGINT NOT NULL,
    kek_id TEXT NOT NULL,
    wrapped_key TEXT NOT NULL,
    ciphertext TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
