//! The dashboard's page, script and stylesheet, compiled into the binary. They carry no data;
//! the script asks for a token and reads everything through the API.

use axum::http::header;
use axum::response::{Html, IntoResponse};

const PAGE: &str = include_str!("../../assets/dashboard.html");
const SCRIPT: &str = include_str!("../../assets/dashboard.js");

pub async fn page() -> impl IntoResponse {
    Html(PAGE)
}

pub async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
}

pub async fn style() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        crate::report::html::STYLE,
    )
}
