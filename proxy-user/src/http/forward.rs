//! Forwarding a request to an upstream group: a proxy route's, or a
//! static route's `try_files` fallback `@NAME`.

use std::future::Future;

use hyper::{Request, header::HeaderValue};

use super::ConnInfo;
use super::{ProxyError, Reply, State, auth_request, body, budget, proxy};

/// What a request forwarded to an upstream group carries from the
/// downstream side.
pub(super) struct Upstream<'a> {
    pub state: &'a State,
    pub conn: ConnInfo,
    pub request_id: &'a HeaderValue,
    pub original: Option<&'a hyper::http::uri::PathAndQuery>,
    /// Set to the server that answered, when one did.
    pub answered: &'a mut Option<proxy::UpstreamInfo>,
}

impl Upstream<'_> {
    /// Proxies `req` to group `upstream` (a proxy route's, or a static
    /// route's `try_files` fallback `@NAME`).
    ///
    /// Not an `async fn`: its arguments are the block's captures, used
    /// where they are (see `http::handle`).
    #[allow(clippy::manual_async_fn)] // the captures are not moved into locals
    pub fn forward(
        self,
        upstream: &str,
        route: &crate::config::Route,
        authorised: Option<(
            &crate::config::AuthRequest,
            Vec<(hyper::header::HeaderName, HeaderValue)>,
        )>,
        mut req: Request<super::RequestBody>,
    ) -> impl Future<Output = Result<Reply, ProxyError>> {
        async move {
            let state = self.state;
            // The client's head as it came, for the upstream head; not when
            // the auth service's headers were set on the map.
            // A WebSocket or CONNECT request (an upgrade offered) is judged
            // by its map; other requests go with their head's bytes and the
            // map only if those cannot be forwarded (`proxy::send`).
            if req.extensions().get::<super::upgrade::Offer>().is_some() {
                super::request_map::materialise(&mut req);
            }
            let map_pending = req.body().map_pending();
            let (client_head, client_index_len) = req.body_mut().take_kept().unzip();
            let client_head = match authorised {
                Some((ar, set)) => {
                    auth_request::apply(ar, req.headers_mut(), set);
                    None
                }
                None => client_head,
            };
            let Some(group) = state.group(upstream) else {
                return Err(ProxyError::Internal(format!(
                    "upstream {upstream} missing from the snapshot"
                )));
            };
            let down = proxy::Downstream {
                client: self.conn.client,
                https: self.conn.https,
                request_id: self.request_id.clone(),
                kicks: &state.services.kicks,
                server_port: self.conn.server_port,
                request_uri: self.original,
                client_head,
                client_index_len: client_index_len.unwrap_or(0),
                map_pending,
            };
            let conn_budget = req.extensions().get::<budget::ConnBudget>().cloned();
            let memory = body::Memory {
                process: &state.bodies,
                connection: conn_budget.as_ref(),
            };
            // Built where it is awaited (`pin!`), not moved there.
            std::pin::pin!(proxy::forward(
                group,
                route,
                &state.config.http,
                memory,
                &down,
                &state.services.going_away,
                self.answered,
                req,
            ))
            .await
        }
    }
}
