//! A service that needs GitHub tokens for its users, on the real stack:
//! one `Refresher` per process, links stored in PostgreSQL, refresh tokens
//! presented over HTTP. Run as many replicas as you like against the same
//! database: each rotation still reaches the provider exactly once.
//!
//! ```sh
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//! TOKEN_URL=https://github.com/login/oauth/access_token \
//! CLIENT_ID=... CLIENT_SECRET=... REPLICA=api-1 \
//! cargo run -p baton-core --features tokio,postgres,http --example service -- octocat
//! ```

use std::time::Duration;

use baton_core::http::HttpTokenEndpoint;
use baton_core::postgres::{migrate, PgStore};
use baton_core::refresher::Refresher;
use baton_core::{Config, LinkId, OwnerId, SecondPresentation};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("set {name}"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The store: one row per (provider, user), migrated on start.
    let pool = sqlx::PgPool::connect(&env("DATABASE_URL")).await?;
    migrate(&pool).await?;
    let store = PgStore::new(pool);

    // The provider: one POST per exchange, fixed client authentication.
    let endpoint = HttpTokenEndpoint::builder(env("TOKEN_URL"), env("CLIENT_ID"))
        .client_secret(env("CLIENT_SECRET"))
        .request_timeout(Duration::from_secs(10))
        .build()?;

    // What the provider allows is configuration: GitHub's refresh tokens
    // are single-use, so a token whose presentation has an unknown outcome
    // is never presented again.
    let config = Config::builder(OwnerId::new(env("REPLICA")))
        .exchange_timeout(Duration::from_secs(10))
        .lease_duration(Duration::from_secs(30))
        .second_presentation(SecondPresentation::Fatal)
        .build()?;
    let refresher = Refresher::new(config, store, endpoint);

    // Any number of tasks may ask at once; they share one refresh.
    let user = std::env::args().nth(1).unwrap_or_else(|| "octocat".into());
    let link = LinkId::new("github", user);
    match refresher.access_token(&link).await {
        // The token itself is a secret: use it, never print it.
        Ok(grant) => println!("{link}: a live access token until {}", grant.expires_at),
        Err(error) => println!("{link}: {error}"),
    }
    Ok(())
}
