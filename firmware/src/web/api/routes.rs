//! The route table: every API route, who may call it, and its handler.

use super::{backup, devices, items, login, upnp, views, vpn, App, Call};
use crate::web::http::Response;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Setup and login: no session needed (still same-origin checked).
    Public,
    /// A live session, and the CSRF token for anything but GET.
    Session,
}

type Handler = fn(&App, &Call<'_>) -> Response;

/// One API route.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub method: &'static str,
    /// Segments in braces match one path segment, e.g. `/api/v1/forwards/{name}`.
    pub path: &'static str,
    pub access: Access,
    handler: Handler,
}

impl Route {
    pub(super) fn handler(&self) -> Handler {
        self.handler
    }
}

macro_rules! route {
    ($m:literal, $p:literal, $a:ident, $h:path) => {
        Route {
            method: $m,
            path: $p,
            access: Access::$a,
            handler: $h,
        }
    };
}

/// Every API route. Tests walk this table to prove that only setup and login are public.
pub static ROUTES: &[Route] = &[
    route!("GET", "/api/v1/setup", Public, login::setup_status),
    route!("POST", "/api/v1/setup", Public, login::setup),
    route!("POST", "/api/v1/login", Public, login::login),
    route!("POST", "/api/v1/logout", Session, login::logout),
    route!("GET", "/api/v1/session", Session, login::session),
    route!("POST", "/api/v1/password", Session, login::password),
    route!("GET", "/api/v1/exposure", Session, views::exposure),
    route!("GET", "/api/v1/log", Session, views::log),
    route!("GET", "/api/v1/system", Session, views::system),
    route!("GET", "/api/v1/forwards", Session, items::forwards_list),
    route!("POST", "/api/v1/forwards", Session, items::forward_add),
    route!(
        "GET",
        "/api/v1/forwards/{name}",
        Session,
        items::forward_get
    ),
    route!(
        "PUT",
        "/api/v1/forwards/{name}",
        Session,
        items::forward_put
    ),
    route!(
        "DELETE",
        "/api/v1/forwards/{name}",
        Session,
        items::forward_delete
    ),
    route!("GET", "/api/v1/triggers", Session, items::triggers_list),
    route!("POST", "/api/v1/triggers", Session, items::trigger_add),
    route!(
        "GET",
        "/api/v1/triggers/{name}",
        Session,
        items::trigger_get
    ),
    route!(
        "PUT",
        "/api/v1/triggers/{name}",
        Session,
        items::trigger_put
    ),
    route!(
        "DELETE",
        "/api/v1/triggers/{name}",
        Session,
        items::trigger_delete
    ),
    route!("GET", "/api/v1/config", Session, backup::config_backup),
    route!("POST", "/api/v1/config", Session, backup::config_restore),
    route!("GET", "/api/v1/settings", Session, backup::settings_get),
    route!("PUT", "/api/v1/settings", Session, backup::settings_put),
    route!("GET", "/api/v1/trial", Session, backup::trial_get),
    route!(
        "POST",
        "/api/v1/trial/confirm",
        Session,
        backup::trial_confirm
    ),
    route!("GET", "/api/v1/upnp", Session, upnp::upnp_get),
    route!("PUT", "/api/v1/upnp", Session, upnp::upnp_put),
    route!(
        "DELETE",
        "/api/v1/upnp/mappings/{proto}/{external_port}",
        Session,
        upnp::mapping_delete
    ),
    route!("POST", "/api/v1/upnp/revoke", Session, upnp::revoke_many),
    route!(
        "POST",
        "/api/v1/upnp/pending/{id}",
        Session,
        upnp::pending_decide
    ),
    route!("GET", "/api/v1/devices", Session, devices::devices_get),
    route!("GET", "/api/v1/dhcp", Session, devices::dhcp_get),
    route!("PUT", "/api/v1/dhcp", Session, devices::dhcp_put),
    route!("DELETE", "/api/v1/dhcp", Session, devices::dhcp_delete),
    route!("GET", "/api/v1/vpn", Session, vpn::vpn_get),
    route!("PUT", "/api/v1/vpn", Session, vpn::vpn_put),
    route!("DELETE", "/api/v1/vpn", Session, vpn::vpn_delete),
    route!("POST", "/api/v1/vpn/import", Session, vpn::vpn_import),
];
