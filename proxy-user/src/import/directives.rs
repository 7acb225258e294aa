//! Every nginx directive the importer knows, and what becomes of it. The
//! one place to change when a rampart key lands: move the directive from
//! `Unsupported` to `Translated` and teach `translate/` to write it.
//!
//! A directive the translator consumed is translated whatever this table
//! says; one it left is reported from here: not needed (with the reason),
//! or unsupported. A name not listed is reported as unknown.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Support {
    /// The translator writes a rampart key for it (where it left one
    /// unconsumed, that use is reported as unsupported in that context).
    Translated,
    /// rampart needs nothing for it; the reason is reported.
    NotNeeded(&'static str),
    /// rampart has no key for it yet; the reason is reported.
    Unsupported(&'static str),
}

use Support::{NotNeeded, Translated, Unsupported};

const TUNING: &str = "nginx process tuning; rampart sizes its own workers, sockets and buffers";
const BUFFERS: &str = "rampart reads request bodies whole before forwarding and buffers responses up to [http] response_buffer";
const TLS_BUILTIN: &str = "rampart offers only forward-secret AEAD suites (ECDHE), with its own session cache and tickets";

pub fn support(name: &str) -> Support {
    match name {
        "autoindex" => Translated,
        "http"
        | "server"
        | "location"
        | "upstream"
        | "events"
        | "listen"
        | "server_name"
        | "ssl_certificate"
        | "ssl_certificate_key"
        | "ssl_protocols"
        | "http2"
        | "ssl"
        | "proxy_pass"
        | "least_conn"
        | "keepalive"
        | "limit_req_zone"
        | "limit_req"
        | "limit_req_status"
        | "client_max_body_size"
        | "proxy_connect_timeout"
        | "proxy_read_timeout"
        | "proxy_send_timeout"
        | "root"
        | "alias"
        | "index"
        | "expires"
        | "try_files"
        | "return"
        | "access_log"
        | "log_format"
        | "keepalive_timeout"
        | "client_header_timeout"
        | "client_body_timeout"
        | "send_timeout"
        | "worker_processes"
        | "worker_shutdown_timeout"
        | "proxy_set_header"
        | "proxy_hide_header"
        | "add_header"
        | "deny"
        | "allow"
        | "auth_basic"
        | "auth_basic_user_file"
        | "set_real_ip_from"
        | "real_ip_header"
        | "real_ip_recursive"
        | "satisfy"
        | "rewrite"
        | "gzip"
        | "gzip_types"
        | "gzip_comp_level"
        | "gzip_min_length"
        | "gzip_proxied"
        | "gzip_vary"
        | "gzip_disable"
        | "gzip_buffers"
        | "gzip_http_version"
        | "error_page"
        | "proxy_intercept_errors"
        | "random"
        | "proxy_next_upstream_tries"
        | "large_client_header_buffers" => Translated,

        "sendfile"
        | "tcp_nopush"
        | "tcp_nodelay"
        | "aio"
        | "directio"
        | "output_buffers"
        | "worker_connections"
        | "worker_rlimit_nofile"
        | "worker_cpu_affinity"
        | "multi_accept"
        | "accept_mutex"
        | "use"
        | "pid"
        | "user"
        | "daemon"
        | "master_process"
        | "thread_pool"
        | "pcre_jit"
        | "load_module"
        | "env"
        | "keepalive_requests"
        | "keepalive_time"
        | "types_hash_max_size"
        | "types_hash_bucket_size"
        | "server_names_hash_bucket_size"
        | "server_names_hash_max_size"
        | "variables_hash_max_size"
        | "variables_hash_bucket_size"
        | "open_file_cache"
        | "open_file_cache_valid"
        | "open_file_cache_min_uses"
        | "open_file_cache_errors"
        | "reset_timedout_connection"
        | "lingering_close"
        | "lingering_time"
        | "lingering_timeout"
        | "client_header_buffer_size"
        | "map_hash_bucket_size"
        | "map_hash_max_size"
        | "http2_max_concurrent_streams"
        | "http2_body_preread_size"
        | "http2_chunk_size"
        | "ssl_buffer_size"
        | "proxy_temp_path"
        | "client_body_temp_path"
        | "fastcgi_temp_path"
        | "uwsgi_temp_path"
        | "scgi_temp_path"
        | "proxy_headers_hash_max_size"
        | "proxy_headers_hash_bucket_size"
        | "send_lowat"
        | "postpone_output"
        | "proxy_socket_keepalive" => NotNeeded(TUNING),
        "zone" => NotNeeded(
            "nginx's shared memory for an upstream group's state; rampart's workers share theirs in process",
        ),
        "http2_push_preload" | "http2_push" => {
            NotNeeded("HTTP/2 server push is gone from browsers; rampart does not push")
        }
        "http3" | "http3_hq" | "quic_retry" | "quic_gso" | "quic_host_key" => {
            Unsupported("HTTP/3 (QUIC) is not in rampart")
        }
        "etag" | "if_modified_since" => Unsupported(
            "rampart always answers conditional requests on static files (ETag, Last-Modified, 304): nginx's defaults (`etag on`, `if_modified_since exact`); they cannot be switched off",
        ),
        "underscores_in_headers"
        | "ignore_invalid_headers"
        | "chunked_transfer_encoding"
        | "proxy_ignore_client_abort" => {
            Unsupported("rampart's handling here is fixed, not configurable")
        }
        "add_trailer" => Unsupported("response trailers are not in rampart"),
        "proxy_buffering"
        | "proxy_buffer_size"
        | "proxy_buffers"
        | "proxy_busy_buffers_size"
        | "proxy_request_buffering"
        | "client_body_buffer_size"
        | "proxy_max_temp_file_size"
        | "proxy_temp_file_write_size" => NotNeeded(BUFFERS),
        "ssl_session_cache"
        | "ssl_session_timeout"
        | "ssl_session_tickets"
        | "ssl_prefer_server_ciphers"
        | "ssl_ciphers"
        | "ssl_dhparam"
        | "ssl_ecdh_curve"
        | "ssl_conf_command"
        | "ssl_early_data" => NotNeeded(TLS_BUILTIN),
        "ssl_stapling" | "ssl_stapling_verify" | "ssl_trusted_certificate" => {
            NotNeeded("OCSP stapling is optional for clients; rampart does not staple")
        }
        "proxy_http_version" => NotNeeded("rampart speaks HTTP/1.1 to upstreams, with keep-alive"),
        // `proxy_redirect off` is not needed (translate/headers.rs).
        "proxy_redirect" => Unsupported(
            "rampart has no Location/Refresh rewrite: nginx turns an upstream's `Location: http://UP/PATH/...` (the proxy_pass URL, or `A` of `proxy_redirect A B`) into the location's prefix (or `B`) on the client's host; rampart passes it unchanged",
        ),
        "log_not_found" => NotNeeded("rampart does not log missing files to its error log"),
        "server_tokens" => NotNeeded("rampart does not announce a version"),
        "default_type" | "types" | "charset" | "charset_types" | "source_charset" => {
            NotNeeded("rampart types static files by extension itself")
        }
        "error_log" => NotNeeded(
            "rampart logs to stderr (the journal under systemd); [log] level sets the level",
        ),
        "gzip_static" => {
            NotNeeded("static routes always serve a .br or .gz sibling to clients that accept it")
        }
        "ssl_reject_handshake" => NotNeeded(
            "rampart refuses TLS for names it has no certificate for only when SNI matches none; see docs/import.md",
        ),
        "server_name_in_redirect" | "port_in_redirect" | "absolute_redirect" => NotNeeded(
            "shapes only redirects to a path (`return 301 /x;`), none here; the importer writes those absolute as nginx sends them",
        ),
        "merge_slashes" => NotNeeded(
            "rampart always merges slashes (docs/configuration.md, How paths are matched)",
        ),
        "health_check" => {
            NotNeeded("NGINX Plus only; rampart's active checks are [upstream] health_check")
        }

        "auth_request" => Unsupported("subrequest authentication is not in rampart"),
        "rewrite_log" => NotNeeded("rampart does not log rewrites"),
        "break" => Unsupported("a rewrite-phase `break` outside a rewrite: no rampart key"),
        "if" | "set" | "map" | "geo" | "split_clients" => {
            Unsupported("variables and conditions: no rampart key yet")
        }
        "proxy_pass_header"
        | "proxy_ignore_headers"
        | "proxy_cookie_domain"
        | "proxy_cookie_path"
        | "more_set_headers"
        | "more_clear_headers"
        | "sub_filter"
        | "sub_filter_once" => Unsupported("header and body editing: no rampart key yet"),
        "resolver" | "resolver_timeout" => NotNeeded(
            "rampart resolves upstream names through the system's /etc/resolv.conf and /etc/hosts",
        ),
        "proxy_cache"
        | "proxy_cache_path"
        | "proxy_cache_valid"
        | "proxy_cache_key"
        | "proxy_cache_bypass"
        | "proxy_no_cache"
        | "proxy_cache_use_stale"
        | "proxy_cache_lock"
        | "proxy_cache_methods" => Unsupported("rampart does not cache responses"),
        "fastcgi_pass"
        | "fastcgi_param"
        | "fastcgi_index"
        | "fastcgi_split_path_info"
        | "fastcgi_read_timeout"
        | "fastcgi_buffers"
        | "fastcgi_buffer_size"
        | "uwsgi_pass"
        | "uwsgi_param"
        | "scgi_pass"
        | "grpc_pass" => {
            Unsupported("rampart proxies HTTP only (no FastCGI, uwsgi, SCGI or gRPC upstreams)")
        }
        "limit_conn" | "limit_conn_zone" | "limit_conn_status" | "limit_conn_log_level" => {
            Unsupported(
                "rampart has no limit on one client's concurrent connections ([filter] syn limits the rate of its new connections, [[listener]] max_connections the total)",
            )
        }
        "limit_rate" | "limit_rate_after" => {
            Unsupported("rampart does not throttle a response's bandwidth")
        }
        "limit_req_dry_run" => Unsupported("rampart's limits always apply (no dry run)"),
        "limit_req_log_level" => NotNeeded("rampart logs limited requests at its own level"),
        "ssl_client_certificate"
        | "ssl_verify_client"
        | "ssl_verify_depth"
        | "ssl_crl"
        | "ssl_password_file" => Unsupported("client certificates are not in rampart"),
        "proxy_ssl_verify"
        | "proxy_ssl_server_name"
        | "proxy_ssl_name"
        | "proxy_ssl_trusted_certificate"
        | "proxy_ssl_certificate"
        | "proxy_ssl_certificate_key"
        | "proxy_ssl_protocols" => Unsupported("TLS to upstreams is not in rampart"),
        "proxy_next_upstream" | "proxy_next_upstream_timeout" => Unsupported(
            "rampart retries connect failures, and 502/503/504 or timeouts for idempotent requests; other conditions cannot be chosen",
        ),
        "autoindex_exact_size" | "autoindex_localtime" | "autoindex_format" => {
            Unsupported("directory listings are not in rampart")
        }
        "internal" => Unsupported("internal-only locations: see the location's route"),
        "stub_status" => Unsupported("use rampart's admin listener (/metrics) instead"),
        "ip_hash" | "hash" | "sticky" => Unsupported("session affinity is not in rampart"),
        "stream" | "mail" => Unsupported("rampart proxies HTTP only"),
        _ => Unsupported("unknown directive"),
    }
}

/// Why a directive the translator knows was left where it stood.
pub fn unused(name: &str) -> &'static str {
    match name {
        "add_header" => {
            "only applies to a location that proxies, serves files or returns (not to one rampart closes with 401, 403 or 502)"
        }
        "proxy_hide_header" => "only applies to a location that proxies",
        "expires" => "Expires on responses that are not static files: no rampart key yet",
        "proxy_set_header"
        | "proxy_connect_timeout"
        | "proxy_read_timeout"
        | "proxy_send_timeout" => "only applies to a location that proxies",
        "root" | "index" | "try_files" => "only applies to a location that serves files",
        "limit_req" | "limit_req_status" => {
            "only applies to a location that proxies or serves files"
        }
        "allow" | "deny" | "auth_basic" | "auth_basic_user_file" => {
            "only applies to a location that proxies or serves files"
        }
        "set_real_ip_from" | "real_ip_header" | "real_ip_recursive" => {
            "only read for a server rampart serves"
        }
        "gzip" | "gzip_types" | "gzip_comp_level" | "gzip_min_length" | "gzip_proxied"
        | "gzip_vary" | "gzip_disable" | "gzip_buffers" | "gzip_http_version" => {
            "not read here (a location's gzip settings are read with its `gzip`)"
        }
        "error_page" | "proxy_intercept_errors" => "not read here",
        "rewrite" => {
            "only in a location that proxies or serves files (rampart has no server-level rewrite)"
        }
        "access_log" => "an access log of its own for one server or location: rampart writes one",
        _ => "not translated in this context",
    }
}

#[cfg(test)]
mod tests {
    use super::{Support, support};

    /// Directives real configurations carry (the Debian, Docker and
    /// Mozilla-generator templates) each have a reason, not "unknown".
    #[test]
    fn common_directives_have_a_reason() {
        for name in [
            "etag",
            "if_modified_since",
            "underscores_in_headers",
            "ignore_invalid_headers",
            "proxy_socket_keepalive",
            "proxy_ignore_client_abort",
            "zone",
            "chunked_transfer_encoding",
            "add_trailer",
            "http2_push_preload",
            "http3",
            "quic_retry",
            "proxy_headers_hash_max_size",
            "send_lowat",
            "postpone_output",
            "limit_conn",
            "limit_conn_zone",
            "limit_rate",
        ] {
            let why = match support(name) {
                Support::NotNeeded(why) | Support::Unsupported(why) => why,
                Support::Translated => continue,
            };
            assert_ne!(why, "unknown directive", "{name}");
            assert_ne!(why, "no rampart key yet", "{name}");
        }
    }
}
