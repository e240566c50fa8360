//! The HTTP client: statements go in the request body, settings and credentials in the query
//! string, answers come back as `JSONEachRow` lines; a non-200 answer becomes [`Error::Server`]
//! with ClickHouse's own message.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use url::Url;

use crate::error::{Error, Result, parse_server_error, shorten};
use crate::sql::check_name;

/// Where a ClickHouse server is and which database strangler uses on it.
#[derive(Clone)]
pub struct Endpoint {
    base: Url,
    database: String,
    user: Option<String>,
    password: Option<String>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("base", &self.base.as_str())
            .field("database", &self.database)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// Parses `http://[user[:password]@]host[:port][/database]` (`clickhouse://` is accepted as a
    /// synonym). The port defaults to 8123, the database to `default`.
    pub fn parse(url: &str) -> Result<Endpoint> {
        let bad = |reason: &str| Error::Url {
            url: redact(url),
            reason: reason.to_string(),
        };
        let mut parsed = Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        match parsed.scheme() {
            "http" => {}
            "clickhouse" => {
                let rest = &url["clickhouse".len()..];
                parsed = Url::parse(&format!("http{rest}")).map_err(|e| bad(&e.to_string()))?;
            }
            other => {
                return Err(bad(&format!(
                    "scheme {other:?} is not supported; use http:// (the HTTP interface, port 8123)"
                )));
            }
        }
        let host = parsed.host_str().ok_or_else(|| bad("no host"))?.to_string();
        let port = parsed.port().unwrap_or(8123);
        let database = match parsed.path().trim_matches('/') {
            "" => "default".to_string(),
            db => db.to_string(),
        };
        check_name("database", &database)?;
        let user = Some(parsed.username())
            .filter(|u| !u.is_empty())
            .map(str::to_string);
        let password = parsed.password().map(str::to_string);
        let base =
            Url::parse(&format!("http://{host}:{port}/")).map_err(|e| bad(&e.to_string()))?;
        Ok(Endpoint {
            base,
            database,
            user,
            password,
        })
    }

    /// The same server with another database.
    pub fn with_database(&self, database: &str) -> Result<Endpoint> {
        check_name("database", database)?;
        Ok(Endpoint {
            database: database.to_string(),
            ..self.clone()
        })
    }

    /// The same server with these credentials (ClickHouse's `default` user when `user` is
    /// `None`).
    pub fn with_credentials(mut self, user: Option<String>, password: Option<String>) -> Endpoint {
        self.user = user;
        self.password = password;
        self
    }

    /// The database strangler's tables live in.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// `host:port`, for messages.
    pub fn host_port(&self) -> String {
        format!(
            "{}:{}",
            self.base.host_str().unwrap_or_default(),
            self.base.port().unwrap_or(8123)
        )
    }

    fn url(&self, database: bool, query: Option<&str>) -> Url {
        let mut u = self.base.clone();
        {
            let mut q = u.query_pairs_mut();
            if database {
                q.append_pair("database", &self.database);
            }
            if let Some(user) = &self.user {
                q.append_pair("user", user);
            }
            if let Some(password) = &self.password {
                q.append_pair("password", password);
            }
            // 64-bit integers as JSON numbers, not strings, in `JSONEachRow` answers.
            q.append_pair("output_format_json_quote_64bit_integers", "0");
            if let Some(query) = query {
                q.append_pair("query", query);
            }
        }
        u
    }
}

/// The URL with any password replaced, for error messages.
fn redact(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// A ClickHouse client over the HTTP interface. Cheap to clone; connections are pooled.
#[derive(Clone, Debug)]
pub struct Client {
    endpoint: Endpoint,
    http: HyperClient<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl Client {
    /// A client for `endpoint`; nothing is sent until the first statement.
    pub fn new(endpoint: Endpoint) -> Client {
        let http = HyperClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build_http();
        Client {
            endpoint,
            http,
            timeout: Duration::from_secs(60),
        }
    }

    /// Parses `url` (see [`Endpoint::parse`]) and builds a client.
    pub fn connect(url: &str) -> Result<Client> {
        Ok(Client::new(Endpoint::parse(url)?))
    }

    /// The same client with another per-request timeout (default 60 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// Where this client sends statements.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The database statements run in.
    pub fn database(&self) -> &str {
        self.endpoint.database()
    }

    /// `GET /ping`: the server is up.
    pub async fn ping(&self) -> Result<()> {
        let mut url = self.endpoint.base.clone();
        url.set_path("/ping");
        let req = Request::builder()
            .method(Method::GET)
            .uri(url.as_str())
            .body(Full::new(Bytes::new()))
            .expect("a GET request builds");
        self.send(req, "ping").await.map(|_| ())
    }

    /// Runs a statement that returns nothing useful (DDL, `INSERT ... SELECT`, `RENAME`).
    pub async fn execute(&self, sql: &str) -> Result<()> {
        self.post(true, None, Bytes::copy_from_slice(sql.as_bytes()), sql)
            .await
            .map(|_| ())
    }

    /// Runs a statement outside any database (`CREATE DATABASE`, `DROP DATABASE`).
    pub async fn execute_on_server(&self, sql: &str) -> Result<()> {
        self.post(false, None, Bytes::copy_from_slice(sql.as_bytes()), sql)
            .await
            .map(|_| ())
    }

    /// Runs a `SELECT` and decodes each row (`FORMAT JSONEachRow` is appended). 64-bit integers
    /// arrive as JSON numbers (`output_format_json_quote_64bit_integers=0`).
    pub async fn query<T: DeserializeOwned>(&self, select: &str) -> Result<Vec<T>> {
        let sql = format!("{select} FORMAT JSONEachRow");
        let body = self
            .post(true, None, Bytes::copy_from_slice(sql.as_bytes()), select)
            .await?;
        let text = std::str::from_utf8(&body).map_err(|e| Error::Decode {
            statement: shorten(select),
            reason: e.to_string(),
        })?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                serde_json::from_str(line).map_err(|e| Error::Decode {
                    statement: shorten(select),
                    reason: format!("{e} in row {line}"),
                })
            })
            .collect()
    }

    /// Sends `data` as the body of `insert` (an `INSERT INTO ... FORMAT <fmt>` statement, which
    /// travels in the query string). One request is one insert: for a `MergeTree` table without
    /// `PARTITION BY` and fewer rows than `max_insert_block_size`, one part, all or nothing.
    pub async fn insert(&self, insert: &str, data: Bytes) -> Result<()> {
        self.post(true, Some(insert), data, insert)
            .await
            .map(|_| ())
    }

    async fn post(
        &self,
        database: bool,
        query: Option<&str>,
        body: Bytes,
        statement: &str,
    ) -> Result<Bytes> {
        let url = self.endpoint.url(database, query);
        let req = Request::builder()
            .method(Method::POST)
            .uri(url.as_str())
            .body(Full::new(body))
            .expect("a POST request builds");
        self.send(req, statement).await
    }

    async fn send(&self, req: Request<Full<Bytes>>, statement: &str) -> Result<Bytes> {
        let endpoint = self.endpoint.host_port();
        let exchange = async {
            let resp = self
                .http
                .request(req)
                .await
                .map_err(|e| Error::Unreachable {
                    endpoint: endpoint.clone(),
                    source: Box::new(e),
                })?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| Error::Unreachable {
                    endpoint: endpoint.clone(),
                    source: Box::new(e),
                })?
                .to_bytes();
            Ok::<_, Error>((status, body))
        };
        let (status, body) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| Error::Timeout {
                endpoint: endpoint.clone(),
                statement: shorten(statement),
                timeout_ms: self.timeout.as_millis() as u64,
            })??;
        if status != StatusCode::OK {
            let (code, message) = parse_server_error(&String::from_utf8_lossy(&body));
            return Err(Error::Server {
                status: status.as_u16(),
                code,
                message,
                statement: shorten(statement),
            });
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_defaults_and_credentials() {
        let e = Endpoint::parse("http://127.0.0.1").unwrap();
        assert_eq!(e.host_port(), "127.0.0.1:8123");
        assert_eq!(e.database(), "default");
        let e = Endpoint::parse("clickhouse://bob:s3cret@db.example:9000/analytics").unwrap();
        assert_eq!(e.host_port(), "db.example:9000");
        assert_eq!(e.database(), "analytics");
        let url = e.url(true, Some("SELECT 1"));
        assert!(url.as_str().contains("user=bob") && url.as_str().contains("password=s3cret"));
        assert!(!format!("{e:?}").contains("s3cret"));
    }

    #[test]
    fn bad_urls_say_what_is_wrong_without_the_password() {
        let err = Endpoint::parse("tcp://u:hunter2@h:9000/x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("use http://"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let err = Endpoint::parse("http://h/bad-name")
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"bad-name\""), "{err}");
    }
}
