//! Errors as the API answers them: a status and a JSON body saying what went wrong and what to
//! do, with a flow's diagnostics when a deploy is refused.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use weft_flow::FlowError;
use weft_store::StoreError;

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What kind of error: `unauthorized`, `forbidden`, `not_found`, `bad_request`,
    /// `conflict`, `flow_rejected`, `unavailable`.
    pub error: String,
    /// What went wrong, and what to do, for people.
    pub message: String,
    /// A refused flow's problems, each with where it is in the file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<DiagnosticBody>,
    /// A refused flow's problems as `weft validate` prints them (file, line, column, the line
    /// with a caret, help).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
}

/// One problem in a flow file.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiagnosticBody {
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// The file, as messages name it.
    pub file: String,
    /// Line and column (both from 1, columns in characters) where the problem starts; absent
    /// when it is about the file as a whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
}

/// Why a request was not done.
#[derive(Debug)]
pub enum ApiError {
    /// No token, or one that is unknown, revoked, or of a suspended tenant.
    Unauthorized,
    /// A valid token for the wrong kind of route (the operator's on a tenant's, or the other
    /// way round).
    Forbidden(String),
    /// Nothing of that name for this caller, whether it exists for someone else or not.
    NotFound(String),
    /// The request itself is wrong.
    BadRequest(String),
    /// It would clash with what exists.
    Conflict(String),
    /// A flow that does not check or plan.
    Rejected(FlowError),
    /// The state database failed; trying again may work.
    Unavailable,
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::InvalidSecretName { .. } | StoreError::InvalidTenantName { .. } => {
                ApiError::BadRequest(e.to_string())
            }
            e => {
                // The operator's log has the details; the caller learns only that it failed.
                tracing::error!(error = %e, "an API call's store access failed");
                ApiError::Unavailable
            }
        }
    }
}

impl ApiError {
    fn status(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Rejected(_) => (StatusCode::UNPROCESSABLE_ENTITY, "flow_rejected"),
            ApiError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        }
    }

    /// What went wrong and what to do, as the answer's `message` says it.
    pub fn into_message(self) -> String {
        match self {
            ApiError::Rejected(e) => e.to_string(),
            e => e.body().message,
        }
    }

    fn body(self) -> ErrorBody {
        let (_, code) = self.status();
        let (message, diagnostics, report) = match self {
            ApiError::Unauthorized => (
                "a valid API token is needed: send `Authorization: Bearer weft_...` (the operator makes tenants' tokens with `weft tenant create` or `weft tenant token`)".to_owned(),
                Vec::new(),
                None,
            ),
            ApiError::Forbidden(m) | ApiError::NotFound(m) | ApiError::BadRequest(m) | ApiError::Conflict(m) => {
                (m, Vec::new(), None)
            }
            ApiError::Rejected(e) => (
                format!(
                    "the flow has {} problem(s); nothing was deployed",
                    e.diagnostics.len()
                ),
                diagnostics(&e),
                Some(e.to_string()),
            ),
            ApiError::Unavailable => (
                "the server's state database failed; try again shortly".to_owned(),
                Vec::new(),
                None,
            ),
        };
        ErrorBody {
            error: code.to_owned(),
            message,
            diagnostics,
            report,
        }
    }
}

fn diagnostics(error: &FlowError) -> Vec<DiagnosticBody> {
    error
        .diagnostics
        .iter()
        .map(|d| {
            let at = d.span.as_ref().map(|s| error.line_col(s.start));
            DiagnosticBody {
                message: d.message.clone(),
                help: d.help.clone(),
                file: error.file.display().to_string(),
                line: at.map(|(line, _)| line),
                column: at.map(|(_, column)| column),
            }
        })
        .collect()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, _) = self.status();
        let unauthorized = matches!(self, ApiError::Unauthorized);
        let mut response = (status, axum::Json(self.body())).into_response();
        if unauthorized {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
