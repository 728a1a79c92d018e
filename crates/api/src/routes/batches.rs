//! `/v1/registrations/batches`: bulk registration from CSV or JSON lines.

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
}
