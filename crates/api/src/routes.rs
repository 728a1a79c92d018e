//! One module per resource; each exports `router()` built with `utoipa_axum::routes!`, so a
//! route cannot exist without its OpenAPI description.

pub mod audit;
pub mod batches;
pub mod claims;
pub mod eligibility;
pub mod health;
pub mod households;
pub mod merges;
pub mod organizations;
pub mod people;
pub mod products;
pub mod registrations;
pub mod registry;
pub mod settlements;
pub mod webhooks;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use passerelle_domain::pagination::{encode_list_cursor, Page, PageRequest};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::problem::ApiError;

/// `{items, next_cursor}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListOf<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

impl<T> ListOf<T> {
    pub fn from_page<D>(page: Page<D>, f: impl FnMut(D) -> T) -> ListOf<T> {
        ListOf {
            next_cursor: page
                .next_key
                .as_deref()
                .map(|key| encode_list_cursor(&this_list(), key)),
            items: page.items.into_iter().map(f).collect(),
        }
    }
}

/// `limit` and `cursor` of every list, read as text so a bad value is a 422 naming it.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1–500; 50 when absent.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500, default = 50, example = 50)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page; absent or empty for the first page.
    pub cursor: Option<String>,
}

impl PageQuery {
    /// A `limit` that is no whole number is `invalid_type`, one outside 1–500 `out_of_range`; a
    /// cursor must be one this list issued (`invalid_cursor` otherwise).
    pub fn parse(&self) -> Result<PageRequest, ApiError> {
        PageRequest::parse_list(&this_list(), self.limit.as_deref(), self.cursor.as_deref())
            .map_err(ApiError::validation)
    }
}

/// The list a request reads, as its cursors name it: the request's path (`/v1/claims`,
/// `/v1/coverages/{id}/contributions` with its id) and its filters (`status=paid`), so that a
/// cursor handed out by one list is refused by every other instead of naming a position that
/// means nothing there, or skipping what the other list holds before it. Decoded and sorted, so
/// that `%61bc` and `abc`, or filters in another order, are one list; the page's own parameters
/// (`limit`, `cursor`), a CSV form's `separator`, those starting with `_`, and those the route
/// does not declare (a proxy's tracking parameter: API.md §3 ignores them) are not part of it.
pub(crate) fn this_list() -> String {
    crate::problem::REQUEST
        .try_with(|r| {
            let declared = crate::openapi::query_parameters().get(&r.route);
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            let mut filters: Vec<(String, String)> = r
                .query
                .split('&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (decode(k), decode(v))
                })
                // The page's own parameters, and those no list reads: `_…` (a browser's
                // cache-buster `_=…`, FHIR's `_count` and `_format`).
                .filter(|(k, _)| !matches!(k.as_str(), "limit" | "cursor" | "separator") && !k.starts_with('_'))
                .filter(|(k, _)| declared.is_none_or(|names| names.contains(k)))
                .collect();
            filters.sort();
            let mut list = decode(&r.path);
            for (i, (k, v)) in filters.iter().enumerate() {
                list.push(if i == 0 { '?' } else { '&' });
                list.push_str(&format!("{k}={v}"));
            }
            list
        })
        .unwrap_or_default()
}

/// 201 with the resource and its `Location`.
pub fn created<T: Serialize>(location: String, body: &T) -> Response {
    let mut response = (axum::http::StatusCode::CREATED, axum::Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}
