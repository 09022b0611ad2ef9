//! The API's paths and queries (`nsvisor_proto::{Route, Query}`), as the
//! daemon parses them and `nsvisorctl` builds them. Input: `PATH[?QUERY]`.
//! What parses must survive a round trip through `Route::path` and
//! `Query::encode`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nsvisor_proto::{Query, Route};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (path, query) = match text.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (text, None),
    };
    let Ok(route) = Route::parse(path) else {
        return;
    };
    assert_eq!(
        Route::parse(&route.path()).ok().as_ref(),
        Some(&route),
        "path {:?}",
        route.path()
    );
    let Ok(query) = Query::parse(query, route.params()) else {
        return;
    };
    let encoded = query.encode();
    assert_eq!(
        Query::parse(Some(&encoded), route.params()).ok().as_ref(),
        Some(&query),
        "query {encoded:?}"
    );
    let uri = route.uri(&query);
    let (uri_path, uri_query) = uri.split_once('?').unwrap_or((&uri, ""));
    assert_eq!(
        Route::parse(uri_path).ok().as_ref(),
        Some(&route),
        "uri {uri:?}"
    );
    assert_eq!(
        Query::parse(Some(uri_query), route.params()).ok().as_ref(),
        Some(&query),
        "uri {uri:?}"
    );
});
