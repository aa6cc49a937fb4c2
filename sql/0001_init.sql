-- 0001_init.sql — the users table that everything later hangs off.
--
-- Applied by scripts/migrate inside one transaction together with its row in
-- schema_migrations: no BEGIN/COMMIT here.

CREATE TABLE users (
    id             bigserial   PRIMARY KEY,
    -- The same rule as POST /v1/users checks; kept here too so that no path
    -- into the table can store a name the API would reject.
    username       text        NOT NULL UNIQUE
                               CONSTRAINT users_username_format
                               CHECK (username ~ '^[a-z0-9_]{3,32}$'),
    display_name   text,
    avatar_url     text,
    -- A self-describing password hash string (libsodium's crypto_pwhash_str,
    -- "$argon2id$..."), never the password.
    password_hash  text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
