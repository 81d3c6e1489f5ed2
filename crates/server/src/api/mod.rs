//! The HTTP layer: the route table ([`router`]), the handlers (`/v1` in [`handlers`] and
//! [`stream`], the compatible APIs in [`compat`]), the middleware ([`guard`], [`auth`],
//! [`admission`], [`envelope`]), errors ([`error`]), the OpenAPI document ([`openapi`]) and
//! [`metrics`].

pub mod admin;
pub mod admission;
pub mod auth;
pub mod captures;
pub mod compat;
pub mod dto;
pub mod envelope;
pub mod error;
pub mod form;
pub mod guard;
pub mod handlers;
pub mod keys;
pub mod layers;
pub mod limits;
pub mod metrics;
pub mod openapi;
mod router;
mod routes;
pub mod state;
pub mod stream;
mod web;
pub mod webhooks;

pub use self::layers::HttpLimits;
pub use self::metrics::metrics_handle;
pub use self::openapi::ApiDoc;
pub use self::router::router;
pub use self::routes::{keyed_routes, Credential, Route};
pub use self::state::AppState;
