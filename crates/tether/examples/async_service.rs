//! An HTTP service (axum) whose handlers call a Python script's exports,
//! one call per request, each with its own time limit: a request that runs
//! out of time answers 504, and the script's work for it really stops (the
//! call is cancelled and the export interrupted).
//!
//! ```text
//! cargo run --example async_service [ADDR]      # default 127.0.0.1:3000
//! curl 127.0.0.1:3000/square/12                 # {"n":12,"square":144}
//! curl '127.0.0.1:3000/work?seconds=5&timeout_ms=200'   # 504 after 200 ms
//! curl 127.0.0.1:3000/interrupted               # {"interrupted":1}
//! ```
//!
//! No thread waits for the script: every call is awaited
//! (`Peer::call_timeout_async`), so many requests are in flight at once on
//! a small runtime.

use std::path::PathBuf;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tether::{Child, Error, Host, Peer};

/// Starts the script the service calls and waits until it serves.
pub async fn start() -> Result<Child, Error> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/async_service.py");
    let child = Host::new().spawn_async(script).await?;
    child
        .peer()
        .wait_ready_async(Duration::from_secs(30))
        .await?;
    Ok(child)
}

/// The routes, calling the script behind `peer`.
pub fn app(peer: Peer) -> Router {
    Router::new()
        .route("/square/{n}", get(square))
        .route("/work", get(work))
        .route("/interrupted", get(interrupted))
        .with_state(peer)
}

type Answer = Result<Json<Value>, (StatusCode, String)>;

async fn square(State(peer): State<Peer>, Path(n): Path<i64>) -> Answer {
    let square: i64 = peer
        .call_timeout_async("square", (n,), Duration::from_secs(5))
        .await
        .map_err(status)?;
    Ok(Json(json!({ "n": n, "square": square })))
}

#[derive(Deserialize)]
struct Work {
    seconds: f64,
    timeout_ms: u64,
}

async fn work(State(peer): State<Peer>, Query(w): Query<Work>) -> Answer {
    let limit = Duration::from_millis(w.timeout_ms);
    let done: String = peer
        .call_timeout_async("work", (w.seconds,), limit)
        .await
        .map_err(status)?;
    Ok(Json(json!({ "work": done })))
}

async fn interrupted(State(peer): State<Peer>) -> Answer {
    let n: u64 = peer
        .call_timeout_async("interrupted_count", (), Duration::from_secs(5))
        .await
        .map_err(status)?;
    Ok(Json(json!({ "interrupted": n })))
}

/// How a failed call answers the request.
fn status(e: Error) -> (StatusCode, String) {
    let code = match &e {
        Error::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        Error::Closed { .. } => StatusCode::SERVICE_UNAVAILABLE,
        Error::Remote(_) | Error::Value(_) => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (code, format!("{e}\n"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".into());
    let child = start().await?;
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app(child.peer()))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    let outcome = child.shutdown_async(Duration::from_secs(5)).await?;
    println!("script ended: {}", outcome.status());
    Ok(())
}
