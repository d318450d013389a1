/*
 * shim.legacy._render: Glance image records -> Nova image JSON, written straight to bytes.
 *
 * The accelerated twin of shim/legacy/views.py. views.py is the definition: for every page
 * this module renders, the bytes equal
 *
 *     orjson.dumps([to_nova_image(image, links, schema) for image in images])[1:-1]
 *
 * (or the same with to_nova_image_basic). It builds no Python objects per image: it reads
 * the dicts orjson.loads made and writes JSON text into one growing buffer, so a page costs
 * about what orjson.dumps of the Glance page would.
 *
 * It only takes the common road. Whenever a record holds anything views.py would treat in a
 * way this file does not spell out (an unusual timestamp, a non-string id, a min_ram that is
 * not an integer, a status that is not a string, a callback that raises ...), the whole
 * page is answered with None and the caller renders it with views.py, which then produces
 * the same answer or the same fault it always does. Only MemoryError propagates.
 *
 * Three callables from Python fill in the rare parts, so they stay defined in one place:
 * views._json_property (block_device_mapping / mappings), views._bool_from_string
 * (auto_disk_config), and orjson.dumps for values that are not str, int, bool or None.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

enum { RENDER_OK = 0, RENDER_BAIL = 1, RENDER_FAIL = -1 };

/* Output grows inside a bytes object, which becomes the result without a copy. */
typedef struct {
    PyObject *bytes; /* NULL until the first write */
    char *data;
    Py_ssize_t len;
    Py_ssize_t cap;
} Buffer;

typedef struct {
    const char *data;
    Py_ssize_t len;
} Text;

/* Link prefixes of one request, already JSON-escaped (string content without quotes). */
typedef struct {
    Text image_self;
    Text image_bookmark;
    Text image_alternate;
    Text server_self;
    Text server_bookmark;
} Prefixes;

static PyObject *json_property = NULL; /* views._json_property */
static PyObject *bool_from_string = NULL; /* views._bool_from_string */
static PyObject *dumps = NULL; /* orjson.dumps */

static PyObject *key_id, *key_name; /* the basic view's two lookups */

static const char HEX[] = "0123456789abcdef";

/* 0: copied as is; otherwise the character after the backslash ('u' for \u00XX). */
static char escape_table[256];

static void
init_escape_table(void)
{
    for (int c = 0; c < 0x20; c++) {
        escape_table[c] = 'u';
    }
    escape_table['\b'] = 'b';
    escape_table['\t'] = 't';
    escape_table['\n'] = 'n';
    escape_table['\f'] = 'f';
    escape_table['\r'] = 'r';
    escape_table['"'] = '"';
    escape_table['\\'] = '\\';
}

static int
grow(Buffer *buffer, Py_ssize_t extra)
{
    Py_ssize_t cap = buffer->cap ? buffer->cap : 16384;
    while (cap - buffer->len < extra) {
        if (cap > PY_SSIZE_T_MAX / 2) {
            PyErr_NoMemory();
            return RENDER_FAIL;
        }
        cap *= 2;
    }
    if (buffer->bytes == NULL) {
        buffer->bytes = PyBytes_FromStringAndSize(NULL, cap);
        if (buffer->bytes == NULL) {
            return RENDER_FAIL;
        }
    }
    else if (_PyBytes_Resize(&buffer->bytes, cap) < 0) {
        return RENDER_FAIL; /* it has freed the old object and set MemoryError */
    }
    buffer->data = PyBytes_AS_STRING(buffer->bytes);
    buffer->cap = cap;
    return RENDER_OK;
}

static inline int
reserve(Buffer *buffer, Py_ssize_t extra)
{
    if (extra <= buffer->cap - buffer->len) {
        return RENDER_OK;
    }
    return grow(buffer, extra);
}

static inline int
put(Buffer *buffer, const char *text, Py_ssize_t len)
{
    if (reserve(buffer, len) != RENDER_OK) {
        return RENDER_FAIL;
    }
    memcpy(buffer->data + buffer->len, text, (size_t)len);
    buffer->len += len;
    return RENDER_OK;
}

#define PUT(buffer, literal) put((buffer), (literal), (Py_ssize_t)(sizeof(literal) - 1))
#define CHECK(call)                                                                         \
    do {                                                                                    \
        int status_ = (call);                                                               \
        if (status_ != RENDER_OK) {                                                         \
            return status_;                                                                 \
        }                                                                                   \
    } while (0)

#define REPEAT_BYTE(b) (0x0101010101010101ULL * (uint64_t)(unsigned char)(b))
#define HAS_ZERO_BYTE(w) (((w) - REPEAT_BYTE(1)) & ~(w) & REPEAT_BYTE(0x80))
#define HAS_BYTE_BELOW(w, n) (((w) - REPEAT_BYTE(n)) & ~(w) & REPEAT_BYTE(0x80))

/* UTF-8 text JSON-escaped as orjson does: \" \\ \b \t \n \f \r, other controls \u00xx. */
static int
put_escaped(Buffer *buffer, const char *text, Py_ssize_t len)
{
    if (len > (PY_SSIZE_T_MAX - buffer->len) / 6) {
        PyErr_NoMemory();
        return RENDER_FAIL;
    }
    CHECK(reserve(buffer, len * 6));
    char *out = buffer->data + buffer->len;
    /* Most text needs no escape at all: find the first byte that does, eight at a time
     * (a word has a byte below 0x20, a '"' or a '\\' exactly when the test is non-zero). */
    Py_ssize_t clean = 0;
    while (len - clean >= 8) {
        uint64_t word;
        memcpy(&word, text + clean, 8);
        if (HAS_BYTE_BELOW(word, 0x20) | HAS_ZERO_BYTE(word ^ REPEAT_BYTE('"')) |
            HAS_ZERO_BYTE(word ^ REPEAT_BYTE('\\'))) {
            break;
        }
        clean += 8;
    }
    while (clean < len && escape_table[(unsigned char)text[clean]] == 0) {
        clean++;
    }
    memcpy(out, text, (size_t)clean);
    out += clean;
    for (Py_ssize_t i = clean; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        char escape = escape_table[c];
        if (escape == 0) {
            *out++ = (char)c;
        }
        else if (escape == 'u') {
            memcpy(out, "\\u00", 4);
            out[4] = HEX[c >> 4];
            out[5] = HEX[c & 0xf];
            out += 6;
        }
        else {
            out[0] = '\\';
            out[1] = escape;
            out += 2;
        }
    }
    buffer->len = out - buffer->data;
    return RENDER_OK;
}

/* The JSON-escaped content of an exact str, without quotes. */
static int
put_str_content(Buffer *buffer, PyObject *text)
{
    if (PyUnicode_IS_COMPACT_ASCII(text)) { /* its characters are its UTF-8 */
        return put_escaped(buffer, (const char *)PyUnicode_DATA(text), PyUnicode_GET_LENGTH(text));
    }
    Py_ssize_t len;
    const char *utf8 = PyUnicode_AsUTF8AndSize(text, &len);
    if (utf8 == NULL) {
        /* Lone surrogates: orjson refuses them too; views.py decides what that means. */
        if (PyErr_ExceptionMatches(PyExc_MemoryError)) {
            return RENDER_FAIL;
        }
        PyErr_Clear();
        return RENDER_BAIL;
    }
    return put_escaped(buffer, utf8, len);
}

static int
put_str(Buffer *buffer, PyObject *text)
{
    CHECK(PUT(buffer, "\""));
    CHECK(put_str_content(buffer, text));
    return PUT(buffer, "\"");
}

static int
put_long_long(Buffer *buffer, long long value)
{
    char digits[24];
    char *end = digits + sizeof(digits);
    char *at = end;
    unsigned long long magnitude =
        value < 0 ? 0ULL - (unsigned long long)value : (unsigned long long)value;
    do {
        *--at = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude);
    if (value < 0) {
        *--at = '-';
    }
    return put(buffer, at, end - at);
}

/* An exception from a callback: MemoryError propagates, anything else means "not here". */
static int
callback_failed(void)
{
    if (PyErr_ExceptionMatches(PyExc_MemoryError)) {
        return RENDER_FAIL;
    }
    PyErr_Clear();
    return RENDER_BAIL;
}

/* What orjson.dumps writes for *value* wherever it is nested. */
static int
put_value(Buffer *buffer, PyObject *value)
{
    if (value == Py_None) {
        return PUT(buffer, "null");
    }
    if (value == Py_True) {
        return PUT(buffer, "true");
    }
    if (value == Py_False) {
        return PUT(buffer, "false");
    }
    if (PyUnicode_CheckExact(value)) {
        return put_str(buffer, value);
    }
    if (PyLong_CheckExact(value)) {
        int overflow = 0;
        long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (!overflow) {
            if (number == -1 && PyErr_Occurred()) {
                return callback_failed();
            }
            return put_long_long(buffer, number);
        }
    }
    PyObject *encoded = PyObject_CallOneArg(dumps, value);
    if (encoded == NULL) {
        return callback_failed();
    }
    int status = RENDER_BAIL;
    if (PyBytes_CheckExact(encoded)) {
        status = put(buffer, PyBytes_AS_STRING(encoded), PyBytes_GET_SIZE(encoded));
    }
    Py_DECREF(encoded);
    return status;
}

/* Borrowed *image[key]*, NULL when absent. */
static int
lookup(PyObject *image, PyObject *key, PyObject **value)
{
    *value = PyDict_GetItemWithError(image, key);
    if (*value == NULL && PyErr_Occurred()) {
        return callback_failed();
    }
    return RENDER_OK;
}

static int
is_ascii_key(PyObject *key, const char *name, Py_ssize_t len)
{
    return PyUnicode_GET_LENGTH(key) == len && PyUnicode_IS_ASCII(key) &&
           memcmp(PyUnicode_DATA(key), name, (size_t)len) == 0;
}

#define IS_KEY(key, literal) is_ascii_key((key), (literal), (Py_ssize_t)(sizeof(literal) - 1))

/* min_ram / min_disk: absent or null -> 0, an int as it is; views.py handles the rest. */
static int
put_min(Buffer *buffer, PyObject *value)
{
    if (value == NULL || value == Py_None) {
        return PUT(buffer, "0");
    }
    if (!PyLong_CheckExact(value)) {
        return RENDER_BAIL;
    }
    int overflow = 0;
    long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow) {
        return RENDER_BAIL;
    }
    if (number == -1 && PyErr_Occurred()) {
        return callback_failed();
    }
    return put_long_long(buffer, number);
}

static int
two_digits(const char *text, int *value)
{
    if (text[0] < '0' || text[0] > '9' || text[1] < '0' || text[1] > '9') {
        return 0;
    }
    *value = (text[0] - '0') * 10 + (text[1] - '0');
    return 1;
}

static int
days_in_month(int year, int month)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month == 2 && year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)) {
        return 29;
    }
    return days[month - 1];
}

/* created_at / updated_at: null and "" -> null; "YYYY-MM-DDTHH:MM:SSZ" with a real date
 * and time is already Nova's text (views.isotime's first branch). Anything else: views.py. */
static int
put_time(Buffer *buffer, PyObject *value)
{
    if (value == NULL || value == Py_None) {
        return PUT(buffer, "null");
    }
    if (!PyUnicode_CheckExact(value) || !PyUnicode_IS_ASCII(value)) {
        return RENDER_BAIL;
    }
    Py_ssize_t len = PyUnicode_GET_LENGTH(value);
    if (len == 0) {
        return PUT(buffer, "null");
    }
    const char *text = (const char *)PyUnicode_DATA(value);
    if (len != 20 || text[4] != '-' || text[7] != '-' || text[10] != 'T' || text[13] != ':' ||
        text[16] != ':' || text[19] != 'Z') {
        return RENDER_BAIL;
    }
    int century, year_in_century, month, day, hour, minute, second;
    if (!two_digits(text, &century) || !two_digits(text + 2, &year_in_century) ||
        !two_digits(text + 5, &month) || !two_digits(text + 8, &day) ||
        !two_digits(text + 11, &hour) || !two_digits(text + 14, &minute) ||
        !two_digits(text + 17, &second)) {
        return RENDER_BAIL;
    }
    int year = century * 100 + year_in_century;
    if (year < 1 || month < 1 || month > 12 || day < 1 || day > days_in_month(year, month) ||
        hour > 23 || minute > 59 || second > 59) {
        return RENDER_BAIL;
    }
    CHECK(PUT(buffer, "\""));
    CHECK(put(buffer, text, len));
    return PUT(buffer, "\"");
}

/* views._STATUS; absent or null -> UNKNOWN; a non-string status is left to views.py. */
static int
put_status(Buffer *buffer, PyObject *value)
{
    if (value == NULL || value == Py_None) {
        return PUT(buffer, "\"UNKNOWN\",\"progress\":0");
    }
    if (!PyUnicode_CheckExact(value)) {
        return RENDER_BAIL;
    }
    if (IS_KEY(value, "active")) {
        return PUT(buffer, "\"ACTIVE\",\"progress\":100");
    }
    if (IS_KEY(value, "queued")) {
        return PUT(buffer, "\"SAVING\",\"progress\":25");
    }
    if (IS_KEY(value, "saving")) {
        return PUT(buffer, "\"SAVING\",\"progress\":50");
    }
    if (IS_KEY(value, "deleted") || IS_KEY(value, "pending_delete")) {
        return PUT(buffer, "\"DELETED\",\"progress\":0");
    }
    if (IS_KEY(value, "killed")) {
        return PUT(buffer, "\"ERROR\",\"progress\":0");
    }
    return PUT(buffer, "\"UNKNOWN\",\"progress\":0");
}

/* "<prefix><id>" with quotes; the escaped id is copied from where it was written. */
static int
put_href(Buffer *buffer, const Text *prefix, Py_ssize_t id_at, Py_ssize_t id_len)
{
    CHECK(reserve(buffer, prefix->len + id_len + 2));
    char *out = buffer->data + buffer->len;
    *out++ = '"';
    memcpy(out, prefix->data, (size_t)prefix->len);
    out += prefix->len;
    memcpy(out, buffer->data + id_at, (size_t)id_len);
    out += id_len;
    *out++ = '"';
    buffer->len = out - buffer->data;
    return RENDER_OK;
}

/* "id":..., then "name":...; id_at and id_len locate the escaped id in the buffer. */

static int
put_image_links(Buffer *buffer, const Prefixes *prefixes, Py_ssize_t id_at, Py_ssize_t id_len)
{
    CHECK(PUT(buffer, ",\"links\":[{\"rel\":\"self\",\"href\":"));
    CHECK(put_href(buffer, &prefixes->image_self, id_at, id_len));
    CHECK(PUT(buffer, "},{\"rel\":\"bookmark\",\"href\":"));
    CHECK(put_href(buffer, &prefixes->image_bookmark, id_at, id_len));
    CHECK(PUT(buffer, "},{\"rel\":\"alternate\",\"type\":\"application/vnd.openstack.image\","
                      "\"href\":"));
    CHECK(put_href(buffer, &prefixes->image_alternate, id_at, id_len));
    return PUT(buffer, "}]");
}

/* What a record's attribute is to the detailed view. */
enum {
    KEY_UNSEEN = 0,
    KEY_HIDDEN,
    KEY_PLAIN,
    KEY_JSON, /* block_device_mapping, mappings: JSON text decoded (docs/contract.md D3) */
    KEY_SERVER, /* instance_uuid */
    KEY_DISK_CONFIG, /* auto_disk_config */
    KEY_NOT_HIDDEN_FIELD, /* a field below missing from the hidden set: views.py's case */
    KEY_FIELD, /* KEY_FIELD + FIELD_*: the base attributes views.py reads by name */
};

enum {
    FIELD_ID,
    FIELD_NAME,
    FIELD_MIN_RAM,
    FIELD_MIN_DISK,
    FIELD_CREATED_AT,
    FIELD_UPDATED_AT,
    FIELD_STATUS,
    FIELD_SIZE,
    FIELD_COUNT,
};

static const struct {
    const char *name;
    Py_ssize_t len;
} FIELD_NAMES[FIELD_COUNT] = {
    {"id", 2},
    {"name", 4},
    {"min_ram", 7},
    {"min_disk", 8},
    {"created_at", 10},
    {"updated_at", 10},
    {"status", 6},
    {"size", 4},
};

/* Attribute kinds by key object, for one render() call. orjson hands out one str object
 * per distinct key, so the records of a page share their keys and a page looks each one
 * up in the hidden set once. Every key stays alive for the whole call (the records are
 * held), so an address cannot be reused for another key meanwhile. When the table is
 * full, further keys are simply classified every time. */
#define KEY_SLOTS 512
#define KEY_SLOTS_USED_MAX 384

typedef struct {
    PyObject *hidden;
    Py_ssize_t used;
    PyObject *keys[KEY_SLOTS];
    unsigned char kinds[KEY_SLOTS];
    Buffer metadata; /* one record's metadata, written while its fields are collected */
} PageState;

static int
classify_key(PyObject *hidden, PyObject *key)
{
    int is_hidden = PySet_Contains(hidden, key);
    if (is_hidden < 0) {
        return -1;
    }
    for (int field = 0; field < FIELD_COUNT; field++) {
        if (is_ascii_key(key, FIELD_NAMES[field].name, FIELD_NAMES[field].len)) {
            return is_hidden ? KEY_FIELD + field : KEY_NOT_HIDDEN_FIELD;
        }
    }
    if (is_hidden) {
        return KEY_HIDDEN;
    }
    if (IS_KEY(key, "block_device_mapping") || IS_KEY(key, "mappings")) {
        return KEY_JSON;
    }
    if (IS_KEY(key, "instance_uuid")) {
        return KEY_SERVER;
    }
    if (IS_KEY(key, "auto_disk_config")) {
        return KEY_DISK_CONFIG;
    }
    return KEY_PLAIN;
}

static int
key_kind(PageState *cache, PyObject *key)
{
    size_t slot = ((uintptr_t)key >> 4) & (KEY_SLOTS - 1);
    while (cache->keys[slot] != NULL) {
        if (cache->keys[slot] == key) {
            return cache->kinds[slot];
        }
        slot = (slot + 1) & (KEY_SLOTS - 1);
    }
    int kind = classify_key(cache->hidden, key);
    if (kind > 0 && cache->used < KEY_SLOTS_USED_MAX) {
        cache->keys[slot] = key;
        cache->kinds[slot] = (unsigned char)kind;
        cache->used++;
    }
    return kind;
}

/* Nesting deeper than this goes to views._json_property, which knows the exact limit. */
#define MINIFY_MAX_DEPTH 32
#define MINIFY_MAX_KEYS 64

typedef struct {
    const char *at;
    const char *end;
} Cursor;

static void
skip_space(Cursor *in)
{
    while (in->at < in->end &&
           (*in->at == ' ' || *in->at == '\t' || *in->at == '\n' || *in->at == '\r')) {
        in->at++;
    }
}

static int minify_value(Buffer *buffer, Cursor *in, int depth);

/* A string without escapes or control characters: copied as it is. */
static int
minify_string(Buffer *buffer, Cursor *in, const char **start, Py_ssize_t *len)
{
    const char *at = in->at + 1;
    while (at < in->end && *at != '"') {
        unsigned char c = (unsigned char)*at;
        if (c < 0x20 || c == '\\') {
            return RENDER_BAIL;
        }
        at++;
    }
    if (at >= in->end) {
        return RENDER_BAIL;
    }
    *start = in->at + 1;
    *len = at - *start;
    CHECK(put(buffer, in->at, at + 1 - in->at));
    in->at = at + 1;
    return RENDER_OK;
}

/* An integer that orjson reads as int and writes back digit for digit. */
static int
minify_number(Buffer *buffer, Cursor *in)
{
    const char *at = in->at;
    if (at < in->end && *at == '-') {
        at++;
    }
    const char *digits = at;
    while (at < in->end && *at >= '0' && *at <= '9') {
        at++;
    }
    Py_ssize_t count = at - digits;
    if (count == 0 || count > 18 || (count > 1 && *digits == '0') ||
        (*digits == '0' && digits != in->at)) {
        return RENDER_BAIL; /* none, too long for int64, leading zero, -0 */
    }
    if (at < in->end && (*at == '.' || *at == 'e' || *at == 'E')) {
        return RENDER_BAIL;
    }
    CHECK(put(buffer, in->at, at - in->at));
    in->at = at;
    return RENDER_OK;
}

static int
minify_literal(Buffer *buffer, Cursor *in, const char *word, Py_ssize_t len)
{
    if (in->end - in->at < len || memcmp(in->at, word, (size_t)len) != 0) {
        return RENDER_BAIL;
    }
    in->at += len;
    return put(buffer, word, len);
}

/* Before the first element: the opening bracket under the cursor and any space after it;
 * *closed* when the closing bracket *close* follows at once (empty), consumed too. */
static int
first_item(Buffer *buffer, Cursor *in, char close, int *closed)
{
    CHECK(put(buffer, in->at, 1));
    in->at++;
    skip_space(in);
    *closed = in->at < in->end && *in->at == close;
    if (*closed) {
        CHECK(put(buffer, in->at, 1));
        in->at++;
    }
    return RENDER_OK;
}

/* After an element: a ',' (another one follows) or the closing bracket *close*. */
static int
next_item(Buffer *buffer, Cursor *in, char close, int *closed)
{
    skip_space(in);
    if (in->at < in->end && (*in->at == ',' || *in->at == close)) {
        *closed = *in->at == close;
        CHECK(put(buffer, in->at, 1));
        in->at++;
        skip_space(in);
        return RENDER_OK;
    }
    return RENDER_BAIL;
}

static int
minify_object(Buffer *buffer, Cursor *in, int depth)
{
    const char *keys[MINIFY_MAX_KEYS];
    Py_ssize_t lens[MINIFY_MAX_KEYS];
    int count = 0;
    int closed;
    CHECK(first_item(buffer, in, '}', &closed));
    while (!closed) {
        if (in->at >= in->end || *in->at != '"' || count == MINIFY_MAX_KEYS) {
            return RENDER_BAIL;
        }
        CHECK(minify_string(buffer, in, &keys[count], &lens[count]));
        for (int i = 0; i < count; i++) {
            /* A repeated key: json.loads keeps the last value at the first place. */
            if (lens[i] == lens[count] && memcmp(keys[i], keys[count], (size_t)lens[i]) == 0) {
                return RENDER_BAIL;
            }
        }
        count++;
        skip_space(in);
        if (in->at >= in->end || *in->at != ':') {
            return RENDER_BAIL;
        }
        in->at++;
        CHECK(PUT(buffer, ":"));
        skip_space(in);
        CHECK(minify_value(buffer, in, depth + 1));
        CHECK(next_item(buffer, in, '}', &closed));
    }
    return RENDER_OK;
}

static int
minify_array(Buffer *buffer, Cursor *in, int depth)
{
    int closed;
    CHECK(first_item(buffer, in, ']', &closed));
    while (!closed) {
        CHECK(minify_value(buffer, in, depth + 1));
        CHECK(next_item(buffer, in, ']', &closed));
    }
    return RENDER_OK;
}

static int
minify_value(Buffer *buffer, Cursor *in, int depth)
{
    if (in->at >= in->end) {
        return RENDER_BAIL;
    }
    const char *ignored_start;
    Py_ssize_t ignored_len;
    switch (*in->at) {
    case '{':
        return depth >= MINIFY_MAX_DEPTH ? RENDER_BAIL : minify_object(buffer, in, depth);
    case '[':
        return depth >= MINIFY_MAX_DEPTH ? RENDER_BAIL : minify_array(buffer, in, depth);
    case '"':
        return minify_string(buffer, in, &ignored_start, &ignored_len);
    case 't':
        return minify_literal(buffer, in, "true", 4);
    case 'f':
        return minify_literal(buffer, in, "false", 5);
    case 'n':
        return minify_literal(buffer, in, "null", 4);
    default:
        return minify_number(buffer, in);
    }
}

/* A JSON-text attribute (contract.md D3), in the common case written without a round trip through
 * Python: JSON made only of objects without repeated keys, arrays, strings without escapes,
 * integers of up to 18 digits, true, false and null decodes and re-encodes to itself minus
 * its whitespace. Anything else (floats, escapes, deep nesting, invalid JSON ...) is left
 * to views._json_property, which decides between the decoded value and the raw string. */
static int
put_json_text(Buffer *buffer, PyObject *value)
{
    if (PyUnicode_CheckExact(value)) {
        Py_ssize_t len;
        const char *utf8 = PyUnicode_AsUTF8AndSize(value, &len);
        if (utf8 == NULL) {
            return callback_failed();
        }
        Py_ssize_t mark = buffer->len;
        Cursor in = {utf8, utf8 + len};
        skip_space(&in);
        int status = minify_value(buffer, &in, 0);
        if (status == RENDER_OK) {
            skip_space(&in);
            if (in.at == in.end) {
                return RENDER_OK;
            }
            status = RENDER_BAIL;
        }
        if (status == RENDER_FAIL) {
            return RENDER_FAIL;
        }
        buffer->len = mark;
    }
    PyObject *decoded = PyObject_CallOneArg(json_property, value);
    if (decoded == NULL) {
        return callback_failed();
    }
    int status = put_value(buffer, decoded);
    Py_DECREF(decoded);
    return status;
}

/* One pass over a record: its metadata (every attribute not in the hidden set, in the
 * record's order) written to state->metadata; the base fields views.py reads by name, the
 * instance_uuid and auto_disk_config values collected in *fields* (new references, since
 * callbacks run before they are used; the caller releases them). */
static int
collect_record(PageState *state, PyObject *image, PyObject **fields)
{
    Buffer *buffer = &state->metadata;
    PyObject *key, *value;
    Py_ssize_t position = 0;
    int first = 1;
    buffer->len = 0;
    while (PyDict_Next(image, &position, &key, &value)) {
        if (!PyUnicode_CheckExact(key)) {
            return RENDER_BAIL;
        }
        int kind = key_kind(state, key);
        if (kind < 0) {
            return callback_failed();
        }
        if (kind >= KEY_FIELD) {
            Py_XSETREF(fields[kind - KEY_FIELD], Py_NewRef(value));
            continue;
        }
        if (kind == KEY_HIDDEN) {
            continue;
        }
        if (kind == KEY_NOT_HIDDEN_FIELD) {
            return RENDER_BAIL;
        }
        if (!first) {
            CHECK(PUT(buffer, ","));
        }
        first = 0;
        CHECK(put_str(buffer, key));
        CHECK(PUT(buffer, ":"));
        if (kind == KEY_JSON && PyUnicode_Check(value)) {
            CHECK(put_json_text(buffer, value));
            continue;
        }
        CHECK(put_value(buffer, value));
        if (kind == KEY_SERVER) {
            Py_XSETREF(fields[FIELD_COUNT], Py_NewRef(value));
        }
        else if (kind == KEY_DISK_CONFIG) {
            Py_XSETREF(fields[FIELD_COUNT + 1], Py_NewRef(value));
        }
    }
    return RENDER_OK;
}

static int
put_server(Buffer *buffer, PyObject *server, const Prefixes *prefixes)
{
    if (!PyUnicode_CheckExact(server)) {
        return RENDER_BAIL;
    }
    CHECK(PUT(buffer, ",\"server\":{\"id\":\""));
    Py_ssize_t id_at = buffer->len;
    CHECK(put_str_content(buffer, server));
    Py_ssize_t id_len = buffer->len - id_at;
    CHECK(PUT(buffer, "\",\"links\":[{\"rel\":\"self\",\"href\":"));
    CHECK(put_href(buffer, &prefixes->server_self, id_at, id_len));
    CHECK(PUT(buffer, "},{\"rel\":\"bookmark\",\"href\":"));
    CHECK(put_href(buffer, &prefixes->server_bookmark, id_at, id_len));
    return PUT(buffer, "}]}");
}

static int
put_disk_config(Buffer *buffer, PyObject *value)
{
    int automatic;
    if (value == Py_True || value == Py_False) {
        automatic = value == Py_True;
    }
    else {
        PyObject *verdict = PyObject_CallOneArg(bool_from_string, value);
        if (verdict == NULL) {
            return callback_failed();
        }
        automatic = PyObject_IsTrue(verdict);
        Py_DECREF(verdict);
        if (automatic < 0) {
            return callback_failed();
        }
    }
    if (automatic) {
        return PUT(buffer, ",\"OS-DCF:diskConfig\":\"AUTO\"");
    }
    return PUT(buffer, ",\"OS-DCF:diskConfig\":\"MANUAL\"");
}

/* "id":..., then "name":...; id_at and id_len locate the escaped id in the buffer. */
static int
put_id_and_name_of(Buffer *buffer, PyObject *id, PyObject *name, Py_ssize_t *id_at,
                   Py_ssize_t *id_len)
{
    if (id == NULL || !PyUnicode_CheckExact(id)) {
        return RENDER_BAIL;
    }
    if (name != NULL && name != Py_None && !PyUnicode_CheckExact(name)) {
        return RENDER_BAIL;
    }
    CHECK(PUT(buffer, "{\"id\":\""));
    *id_at = buffer->len;
    CHECK(put_str_content(buffer, id));
    *id_len = buffer->len - *id_at;
    CHECK(PUT(buffer, "\",\"name\":"));
    if (name == NULL || name == Py_None) {
        return PUT(buffer, "null");
    }
    return put_str(buffer, name);
}

/* views.to_nova_image, keys in its order, from the collected *fields*. */
static int
put_detail_fields(Buffer *buffer, PageState *state, PyObject *const *fields,
                  const Prefixes *prefixes)
{
    PyObject *size = fields[FIELD_SIZE];
    PyObject *server = fields[FIELD_COUNT];
    PyObject *disk_config = fields[FIELD_COUNT + 1];
    Py_ssize_t id_at, id_len;
    CHECK(put_id_and_name_of(buffer, fields[FIELD_ID], fields[FIELD_NAME], &id_at, &id_len));
    CHECK(PUT(buffer, ",\"minRam\":"));
    CHECK(put_min(buffer, fields[FIELD_MIN_RAM]));
    CHECK(PUT(buffer, ",\"minDisk\":"));
    CHECK(put_min(buffer, fields[FIELD_MIN_DISK]));
    CHECK(PUT(buffer, ",\"metadata\":{"));
    if (state->metadata.len > 0) { /* an empty scratch buffer may have no memory yet */
        CHECK(put(buffer, state->metadata.data, state->metadata.len));
    }
    CHECK(PUT(buffer, "},\"created\":"));
    CHECK(put_time(buffer, fields[FIELD_CREATED_AT]));
    CHECK(PUT(buffer, ",\"updated\":"));
    CHECK(put_time(buffer, fields[FIELD_UPDATED_AT]));
    CHECK(PUT(buffer, ",\"status\":"));
    CHECK(put_status(buffer, fields[FIELD_STATUS]));
    CHECK(PUT(buffer, ",\"OS-EXT-IMG-SIZE:size\":"));
    CHECK(size == NULL || size == Py_None ? PUT(buffer, "0") : put_value(buffer, size));
    CHECK(put_image_links(buffer, prefixes, id_at, id_len));
    if (server != NULL && server != Py_None) {
        CHECK(put_server(buffer, server, prefixes));
    }
    if (disk_config != NULL && disk_config != Py_None) {
        CHECK(put_disk_config(buffer, disk_config));
    }
    return PUT(buffer, "}");
}

static int
put_detail(Buffer *buffer, PyObject *image, PageState *state, const Prefixes *prefixes)
{
    if (!PyDict_CheckExact(image)) {
        return RENDER_BAIL;
    }
    /* The base fields, then instance_uuid and auto_disk_config. */
    PyObject *fields[FIELD_COUNT + 2] = {NULL};
    int status = collect_record(state, image, fields);
    if (status == RENDER_OK) {
        status = put_detail_fields(buffer, state, fields, prefixes);
    }
    for (int i = 0; i < FIELD_COUNT + 2; i++) {
        Py_XDECREF(fields[i]);
    }
    return status;
}

/* views.to_nova_image_basic. */
static int
put_basic(Buffer *buffer, PyObject *image, PageState *state, const Prefixes *prefixes)
{
    (void)state;
    if (!PyDict_CheckExact(image)) {
        return RENDER_BAIL;
    }
    PyObject *id, *name;
    Py_ssize_t id_at, id_len;
    CHECK(lookup(image, key_id, &id));
    CHECK(lookup(image, key_name, &name));
    CHECK(put_id_and_name_of(buffer, id, name, &id_at, &id_len));
    CHECK(put_image_links(buffer, prefixes, id_at, id_len));
    return PUT(buffer, "}");
}

static int
text_of(PyObject *bytes, Text *text)
{
    if (!PyBytes_Check(bytes)) {
        PyErr_SetString(PyExc_TypeError, "link prefixes must be bytes");
        return -1;
    }
    text->data = PyBytes_AS_STRING(bytes);
    text->len = PyBytes_GET_SIZE(bytes);
    return 0;
}

typedef int (*PutImage)(Buffer *, PyObject *, PageState *, const Prefixes *);

/* (images, hidden, prefix...) -> the images as JSON without brackets, or None. */
static PyObject *
render(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t nprefixes, PutImage put_image,
       const char *name)
{
    if (nargs != 2 + nprefixes) {
        PyErr_Format(PyExc_TypeError, "%s() takes %zd arguments (%zd given)", name,
                     2 + nprefixes, nargs);
        return NULL;
    }
    if (dumps == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "shim.legacy._render.configure() was not called");
        return NULL;
    }
    PyObject *images = args[0];
    PyObject *hidden = args[1];
    if (!PyList_CheckExact(images)) {
        PyErr_SetString(PyExc_TypeError, "images must be a list");
        return NULL;
    }
    if (hidden != Py_None && !PyAnySet_Check(hidden)) {
        PyErr_SetString(PyExc_TypeError, "hidden must be a set or frozenset");
        return NULL;
    }
    Prefixes prefixes;
    Text *slots[] = {&prefixes.image_self, &prefixes.image_bookmark, &prefixes.image_alternate,
                     &prefixes.server_self, &prefixes.server_bookmark};
    for (Py_ssize_t i = 0; i < nprefixes; i++) {
        if (text_of(args[2 + i], slots[i]) < 0) {
            return NULL;
        }
    }
    /* Keep the list and its records alive while callbacks run. */
    PyObject *items = PySequence_Tuple(images);
    if (items == NULL) {
        return NULL;
    }
    PageState *state = NULL;
    if (hidden != Py_None) {
        state = PyMem_Calloc(1, sizeof(PageState));
        if (state == NULL) {
            Py_DECREF(items);
            return PyErr_NoMemory();
        }
        state->hidden = hidden;
    }
    Buffer buffer = {NULL, NULL, 0, 0};
    int status = RENDER_OK;
    Py_ssize_t count = PyTuple_GET_SIZE(items);
    for (Py_ssize_t i = 0; i < count && status == RENDER_OK; i++) {
        if (i > 0) {
            status = PUT(&buffer, ",");
        }
        if (status == RENDER_OK) {
            status = put_image(&buffer, PyTuple_GET_ITEM(items, i), state, &prefixes);
        }
    }
    Py_DECREF(items);
    if (state != NULL) {
        Py_XDECREF(state->metadata.bytes);
    }
    PyMem_Free(state);
    PyObject *result = NULL;
    if (status == RENDER_OK && buffer.bytes == NULL) {
        result = PyBytes_FromStringAndSize("", 0);
    }
    else if (status == RENDER_OK) {
        if (_PyBytes_Resize(&buffer.bytes, buffer.len) == 0) {
            result = buffer.bytes; /* the buffer's reference becomes the caller's */
        }
        buffer.bytes = NULL; /* returned, or freed by _PyBytes_Resize */
    }
    else if (status == RENDER_BAIL) {
        result = Py_NewRef(Py_None);
    }
    Py_XDECREF(buffer.bytes);
    return result;
}

static PyObject *
render_detail(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs >= 2 && !PyAnySet_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "hidden must be a set or frozenset");
        return NULL;
    }
    return render(args, nargs, 5, put_detail, "detail");
}

static PyObject *
render_basic(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    return render(args, nargs, 3, put_basic, "basic");
}

static PyObject *
configure(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError,
                        "configure(json_property, bool_from_string, dumps) takes 3 arguments");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < 3; i++) {
        if (!PyCallable_Check(args[i])) {
            PyErr_SetString(PyExc_TypeError, "configure() arguments must be callable");
            return NULL;
        }
    }
    Py_XSETREF(json_property, Py_NewRef(args[0]));
    Py_XSETREF(bool_from_string, Py_NewRef(args[1]));
    Py_XSETREF(dumps, Py_NewRef(args[2]));
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"configure", (PyCFunction)(void (*)(void))configure, METH_FASTCALL,
     "configure(json_property, bool_from_string, dumps): the Python parts, set once."},
    {"detail", (PyCFunction)(void (*)(void))render_detail, METH_FASTCALL,
     "detail(images, hidden, image_self, image_bookmark, image_alternate, server_self,\n"
     "server_bookmark) -> bytes | None: detailed views joined by commas, or None."},
    {"basic", (PyCFunction)(void (*)(void))render_basic, METH_FASTCALL,
     "basic(images, None, image_self, image_bookmark, image_alternate) -> bytes | None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "shim.legacy._render",
    .m_doc = "Nova image views written straight to JSON bytes (see shim/legacy/render.py).",
    .m_size = -1,
    .m_methods = methods,
};

static int
intern_keys(void)
{
    struct {
        PyObject **slot;
        const char *name;
    } keys[] = {
        {&key_id, "id"},
        {&key_name, "name"},
    };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        *keys[i].slot = PyUnicode_InternFromString(keys[i].name);
        if (*keys[i].slot == NULL) {
            return -1;
        }
    }
    return 0;
}

PyMODINIT_FUNC
PyInit__render(void)
{
    init_escape_table();
    if (intern_keys() < 0) {
        return NULL;
    }
    return PyModule_Create(&module_def);
}
