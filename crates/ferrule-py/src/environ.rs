//! The environ dict of one request (PEP 3333 "environ Variables").
//!
//! The CGI variables come from `ferrule_core::environ` (the rules live there, unit-tested);
//! this module only makes Python objects: every value is a native `str` decoded from the
//! request's bytes as latin-1 ("the server must decode the bytes as ISO-8859-1", PEP 3333
//! "Unicode Issues"), straight from the bytes with `PyUnicode_DecodeLatin1` (no Rust `String` in
//! between).
//!
//! The `wsgi.*` entries that never change for a thread (`wsgi.version` `(1, 0)`, `wsgi.errors`,
//! `wsgi.multithread` = more than one thread, `wsgi.multiprocess` from the configuration,
//! `wsgi.run_once` `False`, `wsgi.input_terminated` `True`, `wsgi.file_wrapper`) sit in a
//! template dict that each request copies (`dict.copy()` of a small dict is one C call). Keys are
//! interned once per thread; `HTTP_*` keys seen before come from a bounded cache.
//!
//! The template also holds every CGI key and `wsgi.url_scheme`/`wsgi.input` with `None`, which
//! each request overwrites. With those 22 entries the template's table already has room for 20
//! more, so the copy takes the table as it is and a request's `HTTP_*` keys go in without the
//! dict growing (a dict built key by key grew three times per request). The two optional keys,
//! `CONTENT_TYPE` and `CONTENT_LENGTH`, must be absent when the request has none: there is a
//! template variant without each, so a request never pays for deleting them.
//!
//! Values repeat from request to request (method, protocol, host, client address, user
//! agent...): each key remembers its last value and `str`, so a repeated value is a byte
//! compare and a reference, not a decode and a later free. A CGI value that repeats is also
//! written into the template in place of the placeholder, so the next request's copy already
//! holds it and its dict is not written for that key at all (an insert costs ~190 instructions;
//! a hello request now writes 3 keys of 16). A value that changes every request (a client
//! port, a query string) is written into the request's dict only, never into the template.
//!
//! Header names repeat too: a client sends the same ones, in the same order, request after
//! request. When a request's `HTTP_*` names are those of the one before, they get a template of
//! their own (a [`HeaderSet`]: the CGI template plus those keys), and from then on a request with
//! exactly those names, in that order, copies its keys with the dict and writes only the values
//! that changed; its keys are matched by position, not looked up. Any other request uses the CGI
//! template and writes its `HTTP_*` entries one by one.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::os::raw::c_char;

use ferrule_core::environ::{cgi_variables, request_parts_forwarded, CgiKey, EnvKey, EnvVar};
use ferrule_core::exchange::ConnInfo;
use ferrule_core::forwarded::ForwardedView;
use ferrule_core::http1::RequestHead;
use ferrule_core::short_bytes::{same_bytes, ShortBytes};
use pyo3::exceptions::PyRuntimeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::errors::Errors;
use crate::file_wrapper::FileWrapper;
use crate::input::Input;

/// How many distinct `HTTP_*` key strings a thread keeps interned. Real traffic uses a few
/// dozen header names; the bound stops a client inventing names from growing the cache.
const HTTP_KEY_CACHE: usize = 128;

/// Values up to this length are remembered per key (see [`LastValue`]); longer ones (cookies,
/// long query strings) are decoded every time.
const LAST_VALUE_MAX: usize = 128;

/// The slot of `wsgi.url_scheme` in [`Template::values`], after the CGI keys.
const SCHEME_SLOT: usize = CgiKey::ALL.len();

/// Every bit of [`CgiKey::ALL`] set.
const ALL_CGI_KEYS: u32 = (1 << CgiKey::ALL.len()) - 1;

/// The CGI keys a request may lack (PEP 3333: `CONTENT_TYPE` and `CONTENT_LENGTH` "may be
/// empty or absent"); the template has a variant for each combination of them.
const OPTIONAL_KEYS: [CgiKey; 2] = [CgiKey::ContentType, CgiKey::ContentLength];

/// The bits of [`OPTIONAL_KEYS`] in a set of CGI keys (bit `k` = `CgiKey` `k`).
const OPTIONAL_BITS: [u32; 2] = [
    1 << CgiKey::ContentType as u32,
    1 << CgiKey::ContentLength as u32,
];
const OPTIONAL_MASK: u32 = OPTIONAL_BITS[0] | OPTIONAL_BITS[1];

/// What `wsgi.multithread`/`wsgi.multiprocess` report.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Concurrency {
    pub(crate) multithread: bool,
    pub(crate) multiprocess: bool,
}

/// FNV-1a: the `HTTP_*` key cache's hasher. The keys are short header names, and the cache
/// stops growing at [`HTTP_KEY_CACHE`] entries, so a client choosing colliding names can slow
/// at most that many lookups; SipHash cost more than the rest of a key lookup.
#[derive(Debug, Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// The last value a key had, as bytes and as the `str` made from them. Requests on a thread
/// repeat most values (method, protocol, host, server name and port, client address, user
/// agent...), and a `str` is immutable, so the same object serves every request with the same
/// bytes: a compare instead of a decode, and nothing to free when the environ goes.
#[derive(Debug, Default)]
struct LastValue {
    bytes: Vec<u8>,
    text: Option<Py<PyString>>,
}

impl LastValue {
    fn get<'py>(&mut self, py: Python<'py>, value: &[u8]) -> PyResult<Bound<'py, PyString>> {
        self.get_repeated(py, value).map(|(text, _)| text)
    }

    /// The `str` of `value`, and whether it is the same as last time (the same object).
    #[inline]
    fn get_repeated<'py>(
        &mut self,
        py: Python<'py>,
        value: &[u8],
    ) -> PyResult<(Bound<'py, PyString>, bool)> {
        if let Some(text) = &self.text {
            if same_bytes(&self.bytes, value) {
                return Ok((text.bind(py).clone(), true));
            }
        }
        let text = latin1(py, value)?;
        if value.len() <= LAST_VALUE_MAX {
            self.bytes.clear();
            self.bytes.extend_from_slice(value);
            self.text = Some(text.clone().unbind());
        }
        Ok((text, false))
    }
}

/// A cached `HTTP_*` key and its last value.
#[derive(Debug)]
struct HeaderKey {
    key: Py<PyString>,
    last: LastValue,
}

/// The thread's cache of `HTTP_*` keys by name.
type HttpKeys = HashMap<ShortBytes, HeaderKey, BuildHasherDefault<Fnv>>;

/// A dict each request's environ starts as a copy of, and the value objects it holds.
#[derive(Debug)]
struct Template {
    dict: Py<PyDict>,
    /// The address of the value object `dict` holds for each CGI key, then for
    /// `wsgi.url_scheme` (slot [`SCHEME_SLOT`]); 0: a placeholder or not known. See
    /// [`put_templated`].
    values: [usize; SCHEME_SLOT + 1],
}

impl Template {
    fn new(dict: Py<PyDict>) -> Template {
        Template {
            dict,
            values: [0; SCHEME_SLOT + 1],
        }
    }
}

/// A template that also holds one set of `HTTP_*` keys (names in request order). Clients send
/// the same header names request after request (a benchmark's `Host`; a browser's dozen), so
/// a request whose names are the set's copies its keys with the dict, and writes only the values
/// that changed (an insert costs ~200 instructions; a repeated value none).
#[derive(Debug)]
struct HeaderSet {
    template: Template,
    fields: Vec<HeaderField>,
}

/// One `HTTP_*` entry of a [`HeaderSet`].
#[derive(Debug)]
struct HeaderField {
    name: ShortBytes,
    key: Py<PyString>,
    last: LastValue,
    /// As [`Template::values`], for this key.
    recorded: usize,
}

impl HeaderSet {
    /// A header set from `env`, a request's environ holding `names` (its `HTTP_*` names, in
    /// order) and not yet its `wsgi.input`. `None` when a name is not in `http_keys` (the cache
    /// was full).
    fn new(
        env: &Bound<'_, PyDict>,
        names: &[ShortBytes],
        http_keys: &HttpKeys,
    ) -> PyResult<Option<HeaderSet>> {
        let py = env.py();
        let mut fields = Vec::with_capacity(names.len());
        for name in names {
            let Some(cached) = http_keys.get(name) else {
                return Ok(None);
            };
            fields.push(HeaderField {
                name: name.clone(),
                key: cached.key.clone_ref(py),
                last: LastValue::default(),
                recorded: 0,
            });
        }
        Ok(Some(HeaderSet {
            template: Template::new(env.copy()?.unbind()),
            fields,
        }))
    }

    /// Whether the request's `HTTP_*` names, in order, are this set's.
    fn fits(&self, vars: &[EnvVar<'_>]) -> bool {
        let mut fields = self.fields.iter();
        for (key, _) in vars {
            if let EnvKey::Http(name) = key {
                match fields.next() {
                    Some(field) if same_bytes(&field.name, name) => {}
                    _ => return false,
                }
            }
        }
        fields.next().is_none()
    }
}

/// Whether two lists of names are the same.
fn same_names(a: &[ShortBytes], b: &[ShortBytes]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same_bytes(a, b))
}

/// Per-thread environ builder.
#[derive(Debug)]
pub(crate) struct EnvironBuilder {
    /// Indexed by which optional keys the request has (bit `i` = `OPTIONAL_KEYS[i]`): every
    /// `wsgi.*` constant and CGI key, without the optional keys the request lacks.
    templates: [Template; 4],
    /// Per variant, a template that also holds the `HTTP_*` keys of a header set that came
    /// twice in a row (see [`HeaderSet`]).
    header_sets: [Option<HeaderSet>; 4],
    /// The variant and `HTTP_*` names of the last request its variant's header set did not
    /// fit: the same again makes them that variant's header set.
    candidate: (usize, Vec<ShortBytes>),
    cgi_keys: Vec<Py<PyString>>,
    /// Indexed like `cgi_keys`.
    cgi_last: Vec<LastValue>,
    http_keys: HttpKeys,
    key_input: Py<PyString>,
    key_url_scheme: Py<PyString>,
    scheme_http: Py<PyString>,
    scheme_https: Py<PyString>,
    errors: Py<Errors>,
}

impl EnvironBuilder {
    pub(crate) fn new(py: Python<'_>, concurrency: Concurrency) -> PyResult<EnvironBuilder> {
        let errors = Py::new(py, Errors::default())?;
        let full = PyDict::new(py);
        full.set_item(PyString::intern(py, "wsgi.version"), (1, 0))?;
        full.set_item(PyString::intern(py, "wsgi.errors"), errors.bind(py))?;
        full.set_item(
            PyString::intern(py, "wsgi.multithread"),
            concurrency.multithread,
        )?;
        full.set_item(
            PyString::intern(py, "wsgi.multiprocess"),
            concurrency.multiprocess,
        )?;
        full.set_item(PyString::intern(py, "wsgi.run_once"), false)?;
        full.set_item(PyString::intern(py, "wsgi.input_terminated"), true)?;
        full.set_item(
            PyString::intern(py, "wsgi.file_wrapper"),
            py.get_type::<FileWrapper>(),
        )?;
        for key in CgiKey::ALL {
            full.set_item(PyString::intern(py, key.as_str()), py.None())?;
        }
        full.set_item(PyString::intern(py, "wsgi.url_scheme"), py.None())?;
        full.set_item(PyString::intern(py, "wsgi.input"), py.None())?;
        // The variants lacking optional keys: copies of the full template with those keys
        // deleted. A copy keeps the table's size (22 entries' worth), so each still has room
        // for 20 `HTTP_*` keys without growing.
        let variant = |present: usize| -> PyResult<Py<PyDict>> {
            let dict = full.copy()?;
            for (i, key) in OPTIONAL_KEYS.iter().enumerate() {
                if present & (1 << i) == 0 {
                    dict.del_item(PyString::intern(py, key.as_str()))?;
                }
            }
            Ok(dict.unbind())
        };
        let templates = [variant(0)?, variant(1)?, variant(2)?, full.unbind()].map(Template::new);
        Ok(EnvironBuilder {
            templates,
            header_sets: [None, None, None, None],
            candidate: (0, Vec::new()),
            cgi_keys: CgiKey::ALL
                .iter()
                .map(|k| PyString::intern(py, k.as_str()).unbind())
                .collect(),
            cgi_last: CgiKey::ALL.iter().map(|_| LastValue::default()).collect(),
            http_keys: HashMap::default(),
            key_input: PyString::intern(py, "wsgi.input").unbind(),
            key_url_scheme: PyString::intern(py, "wsgi.url_scheme").unbind(),
            scheme_http: PyString::intern(py, "http").unbind(),
            scheme_https: PyString::intern(py, "https").unbind(),
            errors,
        })
    }

    /// This thread's `wsgi.errors`.
    pub(crate) fn errors(&self) -> &Py<Errors> {
        &self.errors
    }

    /// The environ for one request.
    pub(crate) fn build<'py>(
        &mut self,
        py: Python<'py>,
        head: &RequestHead,
        conn: &ConnInfo,
        forwarded: Option<&ForwardedView>,
        input: &Bound<'py, Input>,
    ) -> PyResult<Bound<'py, PyDict>> {
        // `--protocol uwsgi`: the front server's variables, not the server-side head.
        let (vars, https) = match forwarded.and_then(|f| f.uwsgi.as_deref()) {
            Some(uwsgi) => (uwsgi.cgi_variables(conn), uwsgi.scheme() == "https"),
            None => {
                let parts = request_parts_forwarded(head, conn, forwarded);
                let https = parts.scheme == "https";
                (cgi_variables(parts), https)
            }
        };
        // Bit `k` set: CGI key `k` gets a value.
        let mut set: u32 = 0;
        for (key, _) in &vars {
            if let EnvKey::Cgi(k) = key {
                set |= 1 << *k as u32;
            }
        }
        // Bit `i` of the variant: the request has `OPTIONAL_KEYS[i]`.
        let variant = usize::from(set & OPTIONAL_BITS[0] != 0)
            | usize::from(set & OPTIONAL_BITS[1] != 0) << 1;
        let scheme = if https {
            &self.scheme_https
        } else {
            &self.scheme_http
        };
        // The request's header names are those of the variant's header set: its template, and
        // its fields in order for the `HTTP_*` entries. Otherwise the CGI template.
        let (template, mut fields) = match &mut self.header_sets[variant] {
            Some(set) if set.fits(&vars) => (&mut set.template, Some(set.fields.iter_mut())),
            _ => (&mut self.templates[variant], None),
        };
        let env = template.dict.bind(py).copy()?;
        // Without a header set: the `HTTP_*` names, to make one if the next request repeats them.
        let mut names = Vec::new();
        for (key, value) in vars {
            match key {
                EnvKey::Cgi(k) => {
                    let k = k as usize;
                    let last = &mut self.cgi_last[k];
                    put_cgi(&env, template, k, &self.cgi_keys[k], last, &value)?;
                }
                EnvKey::Http(name) => match fields.as_mut() {
                    Some(fields) => {
                        // `fits` saw one field per `HTTP_*` entry, in this order.
                        let Some(field) = fields.next() else {
                            return Err(PyRuntimeError::new_err("environ header set mismatch"));
                        };
                        let (value, repeated) = field.last.get_repeated(py, &value)?;
                        put_templated(
                            &env,
                            template.dict.bind(py),
                            &mut field.recorded,
                            field.key.bind(py),
                            &value,
                            repeated,
                        )?;
                    }
                    None => {
                        let (key, value) = http_item(&mut self.http_keys, py, &name, &value)?;
                        set_item(&env, &key, &value)?;
                        names.push(name);
                    }
                },
                EnvKey::Other(name) => set_other(&env, name, &value)?,
            }
        }
        put_scheme(&env, template, &self.key_url_scheme, scheme)?;
        if fields.is_none() {
            // The same names twice in a row: from now on they have a template of their own
            // (this request's dict, before its `wsgi.input`, so the template holds no request's
            // stream).
            if self.candidate.0 == variant && same_names(&self.candidate.1, &names) {
                self.header_sets[variant] = HeaderSet::new(&env, &names, &self.http_keys)?;
                self.candidate.1.clear();
            } else {
                self.candidate = (variant, names);
            }
        }
        set_item(&env, self.key_input.bind(py), input)?;
        // A key the request has no value for is absent: the template's placeholders never
        // reach the app. The optional keys are handled by the template variant; others (e.g.
        // `REMOTE_PORT` over a Unix socket) are deleted here.
        let missing = ALL_CGI_KEYS & !set & !OPTIONAL_MASK;
        if missing != 0 {
            for (i, key) in self.cgi_keys.iter().enumerate() {
                if missing & (1 << i) != 0 {
                    env.del_item(key.bind(py))?;
                }
            }
        }
        Ok(env)
    }
}

/// The key and value `str`s of one `HTTP_*` entry, the key from `http_keys` (added there when
/// there is room).
fn http_item<'py>(
    http_keys: &mut HttpKeys,
    py: Python<'py>,
    name: &ShortBytes,
    value: &[u8],
) -> PyResult<(Bound<'py, PyString>, Bound<'py, PyString>)> {
    if let Some(cached) = http_keys.get_mut(name) {
        let value = cached.last.get(py, value)?;
        return Ok((cached.key.bind(py).clone(), value));
    }
    // The core builds these keys from token characters (ASCII); anything else is not cached.
    let Ok(text) = std::str::from_utf8(name) else {
        return Ok((latin1(py, name)?, latin1(py, value)?));
    };
    let key = PyString::intern(py, text);
    if http_keys.len() >= HTTP_KEY_CACHE {
        return Ok((key, latin1(py, value)?));
    }
    let mut last = LastValue::default();
    let value = last.get(py, value)?;
    http_keys.insert(
        name.clone(),
        HeaderKey {
            key: key.clone().unbind(),
            last,
        },
    );
    Ok((key, value))
}

/// `env[key] = value` for a request's dict copied from `template`, skipped when the template
/// already holds that very object (its address is `recorded`). With `keep`, the template takes
/// `value` too, so the next request's copy has it. The template holds a reference to each
/// object recorded, so an address names one object for as long as it is recorded.
#[inline(always)]
fn put_templated<V>(
    env: &Bound<'_, PyDict>,
    template: &Bound<'_, PyDict>,
    recorded: &mut usize,
    key: &Bound<'_, PyString>,
    value: &Bound<'_, V>,
    keep: bool,
) -> PyResult<()> {
    let addr = value.as_ptr() as usize;
    if *recorded == addr {
        return Ok(());
    }
    set_item(env, key, value)?;
    if keep {
        set_item(template, key, value)?;
        *recorded = addr;
    }
    Ok(())
}

/// CGI key `k` (`key`) of a request's environ copied from `template`: its `str` from `last`,
/// written unless the template holds it, and into the template when it repeated.
#[inline(always)]
fn put_cgi(
    env: &Bound<'_, PyDict>,
    template: &mut Template,
    k: usize,
    key: &Py<PyString>,
    last: &mut LastValue,
    value: &[u8],
) -> PyResult<()> {
    let py = env.py();
    let (value, repeated) = last.get_repeated(py, value)?;
    // The same value twice in a row is likely to stay: the template takes it (a value that
    // changes every time is not written twice).
    put_templated(
        env,
        template.dict.bind(py),
        &mut template.values[k],
        key.bind(py),
        &value,
        repeated,
    )
}

/// `wsgi.url_scheme`: one of two objects the builder keeps, so the template always takes it.
#[inline(always)]
fn put_scheme(
    env: &Bound<'_, PyDict>,
    template: &mut Template,
    key: &Py<PyString>,
    scheme: &Py<PyString>,
) -> PyResult<()> {
    let py = env.py();
    put_templated(
        env,
        template.dict.bind(py),
        &mut template.values[SCHEME_SLOT],
        key.bind(py),
        scheme.bind(py),
        true,
    )
}

/// An entry with neither a CGI nor an `HTTP_*` key (TLS, forwarded https): rare, so its key is
/// interned on the spot.
fn set_other(env: &Bound<'_, PyDict>, name: &str, value: &[u8]) -> PyResult<()> {
    let py = env.py();
    set_item(env, &PyString::intern(py, name), &latin1(py, value)?)
}

/// `env[key] = value`, straight through the C API (the values are already Python objects).
fn set_item<V>(
    env: &Bound<'_, PyDict>,
    key: &Bound<'_, PyString>,
    value: &Bound<'_, V>,
) -> PyResult<()> {
    // SAFETY: three live objects (the GIL is held: `Bound`); PyDict_SetItem takes its own
    // references and returns -1 with an exception set on failure.
    let rc = unsafe { ffi::PyDict_SetItem(env.as_ptr(), key.as_ptr(), value.as_ptr()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(PyErr::fetch(env.py()))
    }
}

/// Bytes to a Python `str`, one character per byte (latin-1).
pub(crate) fn latin1<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyString>> {
    let len = ffi::Py_ssize_t::try_from(bytes.len())
        .map_err(|_| pyo3::exceptions::PyOverflowError::new_err("value too long"))?;
    // SAFETY: the pointer and length describe `bytes`, valid for the call; a null `errors` means
    // "strict", and latin-1 decoding cannot fail except on memory exhaustion, which returns NULL
    // with an exception set, turned into `Err` by `from_owned_ptr_or_err`.
    unsafe {
        let ptr =
            ffi::PyUnicode_DecodeLatin1(bytes.as_ptr().cast::<c_char>(), len, std::ptr::null());
        Ok(Bound::from_owned_ptr_or_err(py, ptr)?.cast_into_unchecked::<PyString>())
    }
}
