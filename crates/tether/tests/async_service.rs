//! The async service example, started on 127.0.0.1: concurrent requests
//! get their answers, a request past its time limit answers 504, and the
//! script's work for it really stopped.

#[path = "../examples/async_service.rs"]
#[allow(dead_code)]
mod service;

use serde_json::Value;

async fn get(client: &reqwest::Client, url: String) -> (u16, String) {
    let response = client.get(url).send().await.expect("the service answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[test]
fn the_service_answers_concurrent_requests_and_a_timeout_stops_the_scripts_work() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let child = service::start().await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, service::app(child.peer())).await;
            drop(child);
        });
        let client = reqwest::Client::new();

        let requests: Vec<_> = (0..50_i64)
            .map(|n| {
                let client = client.clone();
                tokio::spawn(
                    async move { (n, get(&client, format!("http://{addr}/square/{n}")).await) },
                )
            })
            .collect();
        for request in requests {
            let (n, (status, body)) = request.await.unwrap();
            assert_eq!(status, 200, "{body}");
            let body: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(body["square"], n * n);
        }

        let (status, body) = get(
            &client,
            format!("http://{addr}/work?seconds=30&timeout_ms=200"),
        )
        .await;
        assert_eq!(status, 504, "{body}");
        assert!(
            body.contains("did not answer work() within 200ms"),
            "{body}"
        );

        // The export was interrupted (it counts that), and the script serves on.
        let (status, body) = get(&client, format!("http://{addr}/interrupted")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap()["interrupted"],
            1
        );
        let (status, body) = get(&client, format!("http://{addr}/square/3")).await;
        assert_eq!((status, body.as_str()), (200, r#"{"n":3,"square":9}"#));
    });
}
