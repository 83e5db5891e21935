//! The tenant portal: server-rendered pages under `/portal` where a tenant
//! manages its webhooks and sees its deliveries, without curl.
//!
//! - Sign-in: a tenant API key (`POST /portal/login`) or a portal link
//!   (`GET /portal/auth?token=…`, from `POST /api/v1/tenants/{id}/portal-link`).
//!   Either opens a row in `portal_sessions` and sets a signed cookie carrying
//!   its id ([`token`]); every request checks the row (one primary-key lookup,
//!   with the key behind it). Sign-out ends the row; revoking the API key a
//!   session was opened with, or that issued the link it was opened from,
//!   ends it too. A link opens one session (its id is recorded in
//!   `portal_links_used`) and nothing once its key is revoked.
//! - The sign-in form carries a token bound to a pre-session cookie, and a
//!   sign-in posted from another site (`Origin`, `Referer`, `Sec-Fetch-Site`)
//!   is refused.
//! - Cookies are `Secure` when `api.public_url` is https, or when
//!   `api.trust_forwarded_proto` is set and the proxy says `https`.
//! - Every page and action goes through [`ops`], which calls the REST API's
//!   own handlers with the session's tenant as the caller
//!   ([`Caller::Tenant`]): one authorization check, one validation, so the
//!   portal can do nothing the API forbids, and another tenant's webhook is a
//!   404 here as there. Their errors are a [`PortalError`], shown as a message
//!   page or next to a form's field.
//! - Templates (minijinja), the stylesheet and the script are embedded in the
//!   binary; no CDN, no build step outside cargo.
//! - Forms carry a CSRF token derived from the session; the cookie is
//!   `HttpOnly` and `SameSite=Lax`. An action takes its form as a
//!   [`CsrfForm`], which refuses a form without the token.
//! - Templates get typed contexts (`#[derive(Serialize)]` structs), wrapped
//!   with what every page shows (the tenant, the CSRF token, the menu).
//!
//! Layout: [`pages`] (one handler per page or action), [`charts`] (the home
//! page's charts), [`ops`] (the operations), [`error`] (`PortalError`),
//! [`token`] (signed links, sessions and CSRF tokens); this file holds the
//! routes, rendering, the session and forms.
mod charts;
mod error;
mod ops;
mod pages;
pub mod token;

use crate::auth::Caller;
use crate::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
pub use error::{PortalError, PortalResult};
use hookfleet_core::Settings;
use serde::Serialize;
use std::sync::{Arc, OnceLock};

/// Where the portal lives.
pub const BASE: &str = "/portal";
/// The session cookie.
const COOKIE: &str = "hookfleet_portal";
/// The sign-in form's pre-session cookie (its CSRF token is bound to it).
const LOGIN_COOKIE: &str = "hookfleet_portal_login";

/// The portal's routes.
pub fn routes() -> axum::Router<Arc<AppState>> {
    use pages::*;
    axum::Router::new()
        .route(BASE, get(|| async { Redirect::to("/portal/") }))
        .route("/portal/static/{file}", get(asset))
        .route("/portal/login", get(login_page).post(login))
        .route("/portal/auth", get(auth_link))
        .route("/portal/logout", post(logout))
        .route("/portal/", get(home))
        .route("/portal/webhooks/new", get(new_form).post(create))
        .route("/portal/webhooks/{id}", get(webhook))
        .route("/portal/webhooks/{id}/edit", get(edit_form).post(edit))
        .route("/portal/webhooks/{id}/pause", post(pause))
        .route("/portal/webhooks/{id}/resume", post(resume))
        .route(
            "/portal/webhooks/{id}/delete",
            get(delete_form).post(delete),
        )
        .route("/portal/webhooks/{id}/secret", post(reveal_secret))
        .route("/portal/webhooks/{id}/rotate", post(rotate))
        .route("/portal/webhooks/{id}/test", post(send_test))
        .route("/portal/webhooks/{id}/recover", post(recover))
        .route("/portal/deliveries", get(deliveries))
        .route("/portal/deliveries/{id}", get(delivery))
        .route("/portal/deliveries/{id}/resend", post(resend))
        .route("/portal/dead-letters", get(dead_letters))
        .route("/portal/dead-letters/replay", post(replay))
        .route("/portal/events", get(events))
        .route("/portal/{*rest}", get(not_found))
}

/// `scheme://host` as browsers reach the API: `api.public_url`, else the
/// request's `Host` over http.
pub fn public_base(settings: &Settings, headers: &HeaderMap) -> String {
    if let Some(u) = &settings.api.public_url {
        return u.clone();
    }
    let scheme = if forwarded_https(settings, headers) {
        "https"
    } else {
        "http"
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .unwrap_or("localhost");
    format!("{scheme}://{host}")
}

/// A trusted proxy (`api.trust_forwarded_proto`) says the browser used https.
fn forwarded_https(settings: &Settings, headers: &HeaderMap) -> bool {
    settings.api.trust_forwarded_proto
        && headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// Whether cookies get `Secure`: `api.public_url` is https, or a trusted
/// proxy says the request came over https.
fn secure_cookies(settings: &Settings, headers: &HeaderMap) -> bool {
    settings
        .api
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"))
        || forwarded_https(settings, headers)
}

/// A sign-in posted from another site: its `Sec-Fetch-Site`, else its
/// `Origin`, else its `Referer` names a host that is neither this request's
/// `Host` nor `api.public_url`'s. Without any of them (not a browser) the
/// form's token is the guard.
fn cross_site(settings: &Settings, headers: &HeaderMap) -> bool {
    let get = |h: &str| headers.get(h).and_then(|v| v.to_str().ok());
    if let Some(site) = get("sec-fetch-site") {
        if !matches!(site, "same-origin" | "none") {
            return true;
        }
    }
    let Some(from) = get("origin").or_else(|| get("referer")) else {
        return false;
    };
    let Ok(from) = url::Url::parse(from) else {
        return true; // `Origin: null` (a sandboxed or privacy-hidden page), garbage
    };
    let Some(host) = from.host_str() else {
        return true;
    };
    let port = from.port_or_known_default();
    let same = |authority: &str, default_port: Option<u16>| {
        let (h, p) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
                match p.parse::<u16>() {
                    Ok(p) => (h, Some(p)),
                    Err(_) => (authority, default_port),
                }
            }
            _ => (authority, default_port),
        };
        h.eq_ignore_ascii_case(host) && p == port
    };
    let host_header = get("host").is_some_and(|h| same(h, port));
    let public = settings
        .api
        .public_url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .is_some_and(|u| {
            u.host_str().is_some_and(|h| h.eq_ignore_ascii_case(host))
                && u.port_or_known_default() == port
        });
    !(host_header || public)
}

// ---------------------------------------------------------------- templates

const TEMPLATES: &[(&str, &str)] = &[
    (
        "base.html",
        include_str!("../../portal/templates/base.html"),
    ),
    (
        "macros.html",
        include_str!("../../portal/templates/macros.html"),
    ),
    (
        "login.html",
        include_str!("../../portal/templates/login.html"),
    ),
    (
        "message.html",
        include_str!("../../portal/templates/message.html"),
    ),
    (
        "webhooks.html",
        include_str!("../../portal/templates/webhooks.html"),
    ),
    (
        "webhook_form.html",
        include_str!("../../portal/templates/webhook_form.html"),
    ),
    (
        "webhook.html",
        include_str!("../../portal/templates/webhook.html"),
    ),
    (
        "delete.html",
        include_str!("../../portal/templates/delete.html"),
    ),
    (
        "deliveries.html",
        include_str!("../../portal/templates/deliveries.html"),
    ),
    (
        "delivery.html",
        include_str!("../../portal/templates/delivery.html"),
    ),
    (
        "dead_letters.html",
        include_str!("../../portal/templates/dead_letters.html"),
    ),
    (
        "events.html",
        include_str!("../../portal/templates/events.html"),
    ),
];

fn env() -> &'static minijinja::Environment<'static> {
    static ENV: OnceLock<minijinja::Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = minijinja::Environment::new();
        for (name, src) in TEMPLATES {
            if let Err(e) = env.add_template(name, src) {
                tracing::error!(template = name, error = %e, "A portal template does not parse.");
            }
        }
        env
    })
}

/// The context of every page: the portal's address, then the page's own.
#[derive(Serialize)]
struct Frame<T> {
    base: &'static str,
    #[serde(flatten)]
    page: T,
}

/// Renders `template` with `ctx` plus the common context.
fn render(status: StatusCode, template: &str, ctx: impl Serialize) -> Response {
    let ctx = Frame {
        base: BASE,
        page: ctx,
    };
    let html = env().get_template(template).and_then(|t| t.render(&ctx));
    match html {
        Ok(h) => {
            let mut r = (status, Html(h)).into_response();
            let hs = r.headers_mut();
            hs.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            hs.insert(
                "content-security-policy",
                HeaderValue::from_static(
                    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'",
                ),
            );
            hs.insert(
                "x-content-type-options",
                HeaderValue::from_static("nosniff"),
            );
            hs.insert("referrer-policy", HeaderValue::from_static("same-origin"));
            r
        }
        Err(e) => {
            tracing::error!(
                template,
                error = format!("{e:#}"),
                "Could not render a portal page."
            );
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

/// What a signed-in tenant's page shows around its own context: the tenant,
/// the CSRF token of its forms, the menu entry and the title.
#[derive(Serialize)]
struct SignedIn<'a, T> {
    tenant_id: &'a str,
    csrf: &'a str,
    nav: &'a str,
    title: &'a str,
    #[serde(flatten)]
    page: T,
}

/// A page of a signed-in tenant.
fn page(s: &Session, template: &str, nav: &str, title: &str, ctx: impl Serialize) -> Response {
    page_status(s, StatusCode::OK, template, nav, title, ctx)
}

fn page_status(
    s: &Session,
    status: StatusCode,
    template: &str,
    nav: &str,
    title: &str,
    ctx: impl Serialize,
) -> Response {
    let ctx = SignedIn {
        tenant_id: &s.tenant,
        csrf: &s.csrf,
        nav,
        title,
        page: ctx,
    };
    render(status, template, ctx)
}

#[derive(Serialize)]
struct Message<'a> {
    title: &'a str,
    heading: &'a str,
    message: &'a str,
    link: Option<Link<'a>>,
}

#[derive(Serialize)]
struct Link<'a> {
    href: &'a str,
    text: &'a str,
}

/// A message page (errors, refused links), with or without a session.
fn message(status: StatusCode, heading: &str, text: &str, link: Option<(&str, &str)>) -> Response {
    let ctx = Message {
        title: heading,
        heading,
        message: text,
        link: link.map(|(href, text)| Link { href, text }),
    };
    render(status, "message.html", ctx)
}

// ------------------------------------------------------------------ session

/// The signed-in tenant of a portal request. Without a valid session a page
/// redirects to the sign-in page.
pub struct Session {
    /// The `portal_sessions` row.
    pub id: String,
    pub tenant: String,
    pub caller: Caller,
    pub csrf: String,
}

/// The session's CSRF token, left in the request by [`Session`] for
/// [`CsrfForm`].
#[derive(Clone)]
struct SessionCsrf(String);

impl FromRequestParts<Arc<AppState>> for Session {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        st: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let to_login = || Redirect::to("/portal/login").into_response();
        let Some(tok) = cookie(&parts.headers, COOKIE) else {
            return Err(to_login());
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let Ok(claims) = st.signer.verify(&tok, "session", now) else {
            return Err(to_login());
        };
        // One lookup: the row is open and unexpired, and the key behind it
        // (if any) is not revoked.
        match hookfleet_store::portal_sessions::is_live(&st.pool, &claims.nonce, &claims.tenant)
            .await
        {
            Ok(true) => {}
            Ok(false) => return Err(to_login()),
            Err(_) => {
                let e = crate::error::ApiError::unavailable("the database");
                return Err(PortalError::from(e).into_response());
            }
        }
        let csrf = st.signer.csrf(&tok);
        parts.extensions.insert(SessionCsrf(csrf.clone()));
        Ok(Session {
            id: claims.nonce,
            csrf,
            caller: Caller::Tenant(claims.tenant.clone()),
            tenant: claims.tenant,
        })
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// Why a sign-in opened no session.
enum NotOpened {
    /// The key behind it (that signed in, or issued the link) is revoked.
    KeyRevoked,
    /// The link was used already.
    LinkUsed,
    /// The tenant is gone (or is another tenant under the same id).
    TenantGone,
    Failed(PortalError),
}

/// A link being used: its id and expiry (Unix seconds).
struct LinkUse<'a> {
    id: &'a str,
    exp: i64,
    /// The tenant's generation the link was issued for (Unix microseconds).
    since: Option<i64>,
}

/// Opens a `portal_sessions` row for `tenant` (checking `key_id` is live, and
/// recording `link` as used), in one transaction; prunes expired rows.
async fn open_session(
    st: &AppState,
    tenant: &str,
    key_id: Option<&str>,
    link: Option<LinkUse<'_>>,
) -> Result<(String, i64), NotOpened> {
    use hookfleet_store::portal_sessions::{self as sessions, Opened};
    let ttl = st.settings.api.portal_session_ttl.as_secs() as i64;
    let now = time::OffsetDateTime::now_utc();
    let exp = now + time::Duration::seconds(ttl);
    let id = token::nonce();
    let link = link.map(|l| sessions::LinkUse {
        id: l.id,
        expires_at: time::OffsetDateTime::from_unix_timestamp(l.exp).unwrap_or(exp),
        tenant_since: l.since.map(|us| {
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        }),
    });
    match sessions::open(&st.pool, &id, tenant, key_id, exp, link).await {
        Ok(Opened::Opened) => Ok((id, exp.unix_timestamp())),
        Ok(Opened::KeyRevoked) => Err(NotOpened::KeyRevoked),
        Ok(Opened::LinkUsed) => Err(NotOpened::LinkUsed),
        Ok(Opened::TenantGone) => Err(NotOpened::TenantGone),
        Err(e) => Err(NotOpened::Failed(e.into())),
    }
}

/// Signs `tenant` in: a session row, its cookie, and a redirect to the
/// portal's home; or the page that says why not.
async fn start_session(
    st: &AppState,
    headers: &HeaderMap,
    tenant: &str,
    key_id: Option<String>,
    link: Option<LinkUse<'_>>,
) -> PortalResult<Response> {
    let (id, exp) = match open_session(st, tenant, key_id.as_deref(), link).await {
        Ok(v) => v,
        Err(NotOpened::KeyRevoked) => {
            return Ok(message(
                StatusCode::FORBIDDEN,
                "This portal link is no longer valid",
                "The API key that issued it was revoked. Ask for a new link, or sign in with a current API key.",
                Some(("/portal/login", "Sign in with an API key")),
            ))
        }
        Err(NotOpened::LinkUsed) => {
            return Ok(message(
                StatusCode::FORBIDDEN,
                "This portal link was already used",
                "A portal link signs in once. Ask for a new link, or sign in with an API key.",
                Some(("/portal/login", "Sign in with an API key")),
            ))
        }
        Err(NotOpened::TenantGone) => {
            return Ok(message(
                StatusCode::FORBIDDEN,
                "This portal link is no longer valid",
                "Its tenant was deleted. Ask for a new link.",
                None,
            ))
        }
        Err(NotOpened::Failed(e)) => return Err(e),
    };
    let tok = st.signer.sign(&token::Claims {
        kind: "session".into(),
        tenant: tenant.to_owned(),
        exp,
        key_id,
        nonce: id,
        since: None,
    });
    let c = format!(
        "{COOKIE}={tok}; Path=/portal; HttpOnly; SameSite=Lax; Max-Age={}{}",
        st.settings.api.portal_session_ttl.as_secs(),
        if secure_cookies(&st.settings, headers) {
            "; Secure"
        } else {
            ""
        }
    );
    let mut r = Redirect::to("/portal/").into_response();
    if let Ok(v) = HeaderValue::from_str(&c) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(r)
}

/// Ends the session's row, clears the cookie, and shows the sign-in page.
async fn end_session(st: &AppState, headers: &HeaderMap, s: &Session) -> PortalResult<Response> {
    hookfleet_store::portal_sessions::end(&st.pool, &s.id).await?;
    let mut r = Redirect::to("/portal/login").into_response();
    let c = format!(
        "{COOKIE}=; Path=/portal; HttpOnly; SameSite=Lax; Max-Age=0{}",
        if secure_cookies(&st.settings, headers) {
            "; Secure"
        } else {
            ""
        }
    );
    if let Ok(v) = HeaderValue::from_str(&c) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(r)
}

/// The sign-in form's pre-session value (from its cookie, or new) and the
/// `Set-Cookie` that keeps it for an hour.
fn login_nonce(st: &AppState, headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    if let Some(v) = cookie(headers, LOGIN_COOKIE).filter(|v| {
        (16..=64).contains(&v.len())
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }) {
        return (v, None);
    }
    let v = token::nonce();
    let c = format!(
        "{LOGIN_COOKIE}={v}; Path=/portal/login; HttpOnly; SameSite=Strict; Max-Age=3600{}",
        if secure_cookies(&st.settings, headers) {
            "; Secure"
        } else {
            ""
        }
    );
    (v, HeaderValue::from_str(&c).ok())
}

/// The sign-in form's CSRF token, bound to its pre-session value.
fn login_csrf(st: &AppState, nonce: &str) -> String {
    st.signer.tag(&["login", nonce])
}

/// The portal's "Not found" page (also for addresses with a NUL or bytes
/// that are not UTF-8, see [`crate::guard`]).
pub(crate) fn not_found_page() -> Response {
    PortalError::NotFound.into_response()
}

// -------------------------------------------------------------------- forms

/// An `application/x-www-form-urlencoded` body, with repeated fields kept.
pub struct Form(Vec<(String, String)>);

impl Form {
    fn parse(body: &[u8]) -> Form {
        Form(
            url::form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of `name`, trimmed; `None` when absent or empty.
    fn get(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_owned())
            .collect()
    }
}

impl<S: Send + Sync> axum::extract::FromRequest<S> for Form {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let body = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Form::parse(&body))
    }
}

/// The form of an action: refused (a "This form has expired" page) unless it
/// carries the session's CSRF token, so another site's form does nothing.
/// Comes after [`Session`] in a handler's arguments; without a session before
/// it, every form is refused.
pub struct CsrfForm(pub Form);

impl axum::extract::FromRequest<Arc<AppState>> for CsrfForm {
    type Rejection = Response;

    async fn from_request(
        req: axum::extract::Request,
        st: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let want = req.extensions().get::<SessionCsrf>().cloned();
        let form = <Form as axum::extract::FromRequest<_>>::from_request(req, st).await?;
        let got = form.get("csrf").unwrap_or_default();
        match want {
            Some(SessionCsrf(want)) if token::same(&got, &want) => Ok(CsrfForm(form)),
            _ => Err(message(
                StatusCode::FORBIDDEN,
                "This form has expired",
                "Reload the page and try again.",
                Some(("/portal/", "Back to your webhooks")),
            )),
        }
    }
}

// ------------------------------------------------------------------- assets

const CSS: &str = include_str!("../../portal/static/portal.css");
const JS: &str = include_str!("../../portal/static/portal.js");

async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let (body, ctype) = match file.as_str() {
        "portal.css" => (CSS, "text/css; charset=utf-8"),
        "portal.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, ctype),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_template_parses() {
        let env = super::env();
        for (name, _) in super::TEMPLATES {
            env.get_template(name)
                .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        }
    }

    /// The pages' Content-Security-Policy allows only the portal's own
    /// scripts and styles: no inline style, script or event handler in a
    /// template, and nothing from another host in the templates or assets.
    #[test]
    fn templates_and_assets_keep_to_the_csp() {
        let external = |src: &str| {
            let src = ["url(data:", "url(\"data:", "url('data:"]
                .iter()
                .fold(src.to_owned(), |s, data| s.replace(data, ""));
            src.contains("http://") || src.contains("https://") || src.contains("url(")
        };
        for (name, src) in super::TEMPLATES {
            let lower = src.to_ascii_lowercase();
            assert!(!external(&lower), "{name}: an external URL");
            assert!(
                !lower.contains("<style") && !lower.contains(" style="),
                "{name}: inline style"
            );
            for tag in lower.split("<script").skip(1) {
                let attrs = tag.split('>').next().unwrap_or_default();
                assert!(attrs.contains(" src="), "{name}: inline script");
            }
            let handler = lower.split(" on").skip(1).any(|rest| {
                let word: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
                !word.is_empty() && rest[word.len()..].starts_with('=')
            });
            assert!(!handler, "{name}: an inline event handler");
        }
        for (name, src) in [("portal.css", super::CSS), ("portal.js", super::JS)] {
            assert!(
                !external(&src.to_ascii_lowercase()),
                "{name}: an external URL"
            );
        }
    }
}
