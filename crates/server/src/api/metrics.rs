//! Prometheus metrics: the process's recorder, the request counter and latency histogram (a route
//! layer), and `/metrics`.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use super::state::AppState;

/// The process-wide Prometheus recorder (a process has one).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets(&[
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
                .expect("static buckets")
                .install_recorder()
                .expect("one metrics recorder per process")
        })
        .clone()
}

/// A request's method as a label: the methods HTTP defines, else `other`, so that made-up methods
/// cannot grow the label set (and `/metrics`) without bound. Routes are bounded already: the matched
/// route's pattern, or `unmatched`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

pub async fn track_request(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("facerec_http_requests_total", "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!("facerec_http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let load = state.app.load();
    metrics::gauge!("facerec_inference_queue_depth").set(load.queued as f64);
    metrics::gauge!("facerec_inference_in_flight").set(load.in_flight as f64);
    if let Ok(n) = state.app.persons().faces_stored().await {
        metrics::gauge!("facerec_faces_stored").set(n as f64);
    }
    let mut text = state.metrics.render();
    text.push_str(&calibration_gauges(&state));
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        text,
    )
        .into_response()
}

/// A per-collection gauge: its name, its help, and its value from a calibration.
type Gauge = (
    &'static str,
    &'static str,
    fn(&facerec_core::calibration::Calibration) -> f64,
);

/// Each collection's calibrated threshold and estimated FPIR, drawn from the calibrations in force
/// when scraped, so a deleted collection's series go with it (a recorder keeps a series forever).
/// Labelled by the collection's id, not its name: a name is a tenant's words and may say who they
/// are, and `--metrics-public` shows these to anyone; `GET /v1/collections` maps ids to names.
fn calibration_gauges(state: &AppState) -> String {
    use std::fmt::Write;
    let in_force = state.app.calibrator().in_force();
    let mut text = String::new();
    let gauges: [Gauge; 2] = [
        (
            "facerec_match_threshold_effective",
            "the calibrated match threshold in force",
            |c| f64::from(c.effective_threshold.value()),
        ),
        (
            "facerec_estimated_fpir",
            "the estimated share of strangers named at that threshold",
            |c| c.estimated_fpir,
        ),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(text, "# HELP {name} {help}, per collection (by id)");
        let _ = writeln!(text, "# TYPE {name} gauge");
        for (collection, calibration) in &in_force {
            let _ = writeln!(
                text,
                "{name}{{collection=\"{collection}\"}} {}",
                value(calibration)
            );
        }
    }
    text
}
