-- 007: one Tuya access token shared by every run (they live 2 h; each run fetching its own made
-- token calls grow with the runs). Encrypted like the PINs, with LOCK_PIPELINE_PIN_KEY.
CREATE TABLE pipeline.tuya_tokens (
    access_id  text PRIMARY KEY,          -- the cloud project (TUYA_ACCESS_ID)
    ciphertext bytea NOT NULL,            -- Fernet: the access and refresh tokens; never in clear
    renew_at   timestamptz NOT NULL,      -- a client renews it after this instant
    updated_at timestamptz NOT NULL
);
