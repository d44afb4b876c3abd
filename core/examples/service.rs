//! A service that needs GitHub tokens for its users, on the real stack:
//! one `Refresher` per process, links stored in PostgreSQL, refresh tokens
//! presented over HTTP. Run as many replicas as you like against the same
//! database: each rotation still reaches the provider exactly once.
//!
//! Two steps, as in a real service: the OAuth callback enrols the pair the
//! authorization-code exchange returned, then any task asks for a token.
//! On a fresh database, pass the pair in `ACCESS_TOKEN` / `REFRESH_TOKEN`
//! (and the access token's lifetime in `EXPIRES_IN` seconds) to run the
//! callback first; without them the link must already be enrolled.
//!
//! Tokens are sealed in the table under `TOKEN_KEY` (32 bytes, base64; keep
//! it in a secrets manager, and keep it: the rows are unreadable without
//! it); `TOKENS_AT_REST=plaintext` stores them as text instead.
//!
//! The driver's metrics (feature `metrics`) go to a Prometheus recorder:
//! printed when the example is done, and served at
//! `http://$METRICS_ADDR/metrics` until Ctrl-C if `METRICS_ADDR` is set.
//!
//! ```sh
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test TOKEN_KEY=$(openssl rand -base64 32) \
//! TOKEN_URL=https://github.com/login/oauth/access_token \
//! CLIENT_ID=... CLIENT_SECRET=... \
//! ACCESS_TOKEN=ghu_... REFRESH_TOKEN=ghr_... EXPIRES_IN=28800 \
//! cargo run -p baton-core --features tokio,postgres,http,metrics --example service -- octocat
//! ```

use std::time::Duration;

use baton_core::http::HttpTokenEndpoint;
use baton_core::postgres::{KeyRing, PgPoolOptions, PgStore, TokensAtRest};
use baton_core::refresher::{wall_clock, Refresher};
use baton_core::{
    AccessGrant, AccessToken, Config, LinkId, OwnerId, RefreshToken, SecondPresentation, TokenSet,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("set {name}"))
}

fn optional_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// What the OAuth callback's authorization-code exchange returned, here
/// from the environment; `None` if nothing was passed.
fn code_exchange_result() -> Option<TokenSet> {
    let access = optional_env("ACCESS_TOKEN")?;
    let expires_in = optional_env("EXPIRES_IN").map_or(Ok(8 * 3600), |s| s.parse::<u64>());
    let expires_in = Duration::from_secs(expires_in.expect("EXPIRES_IN is a number of seconds"));
    Some(TokenSet {
        access: AccessGrant {
            token: AccessToken::new(access),
            expires_at: wall_clock() + expires_in,
            lifetime: None,
        },
        refresh_token: optional_env("REFRESH_TOKEN").map(RefreshToken::new),
    })
}

/// Serves the recorder's text at `/metrics` (any path, in fact) until
/// Ctrl-C: a real service mounts `handle.render()` on its own router.
async fn serve_metrics(addr: &str, handle: PrometheusHandle) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!(
        "metrics: http://{}/metrics (Ctrl-C to stop)",
        listener.local_addr()?
    );
    loop {
        let (mut socket, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let body = handle.render();
        tokio::spawn(async move {
            let mut request = [0u8; 1024];
            let _ = socket.read(&mut request).await;
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = socket.write_all(head.as_bytes()).await;
            let _ = socket.write_all(body.as_bytes()).await;
        });
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Metrics: the driver records through the `metrics` facade; this
    // recorder keeps them in Prometheus's format. Labels are the provider
    // and the outcome, never a user or a token.
    let metrics = PrometheusBuilder::new().install_recorder()?;

    // The store: one row per (provider, user), migrated on start. The pool
    // options are sqlx's, re-exported: no sqlx version to match by hand.
    // Tokens at rest: sealed under the team's key, or plaintext by name.
    let at_rest = match optional_env("TOKENS_AT_REST").as_deref() {
        Some("plaintext") => TokensAtRest::Plaintext,
        _ => TokensAtRest::Encrypted(KeyRing::from_base64("key-1", &env("TOKEN_KEY"))?),
    };
    let pool = PgPoolOptions::new().max_connections(8);
    let store = PgStore::connect_with(pool, &env("DATABASE_URL"), at_rest).await?;

    // The provider: one POST per exchange, fixed client authentication. The
    // four timeouts nest (README, "The four timeouts"): connect < request
    // <= exchange < lease, so a connection that never opened is a retryable
    // error rather than an unknown outcome.
    let mut endpoint = HttpTokenEndpoint::builder(env("TOKEN_URL"), env("CLIENT_ID"))
        .connect_timeout(Duration::from_secs(3))
        .request_timeout(Duration::from_secs(10));
    if let Some(secret) = optional_env("CLIENT_SECRET") {
        endpoint = endpoint.client_secret(secret);
    }
    let endpoint = endpoint.build()?;

    // What the provider allows is configuration: GitHub's refresh tokens
    // are single-use, so a token whose presentation has an unknown outcome
    // is never presented again.
    // The owner id names this process start in the leases it takes: a new
    // one at every start, so a restarted replica never mistakes its
    // predecessor's lease (whose exchange may still land) for its own.
    let config = Config::builder(OwnerId::generate("service"))
        .exchange_timeout(Duration::from_secs(10))
        .lease_duration(Duration::from_secs(30))
        .second_presentation(SecondPresentation::Fatal)
        .build()?;
    let refresher = Refresher::new(config, store, endpoint);

    let user = std::env::args().nth(1).unwrap_or_else(|| "octocat".into());
    let link = LinkId::new("github", user);

    // The OAuth callback: one call stores the fresh pair. It wins over any
    // refresh of an older pair in flight on any replica.
    if let Some(pair) = code_exchange_result() {
        refresher.enroll(&link, pair).await?;
        println!("{link}: enrolled");
    }

    // Any number of tasks may ask at once; they share one refresh.
    match refresher.access_token(&link).await {
        // The token itself is a secret: use it, never print it.
        Ok(grant) => println!("{link}: a live access token until {}", grant.expires_at),
        Err(error) => println!("{link}: {error}"),
    }

    println!("\n{}", metrics.render());
    if let Some(addr) = optional_env("METRICS_ADDR") {
        serve_metrics(&addr, metrics).await?;
    }
    Ok(())
}
