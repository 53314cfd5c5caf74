/*
 * names.c: the shapes of stream names, event types, sources, reference ids
 * and trace context, and the event kinds' names (see tidings/event.h).
 *
 * The rules are strict on purpose: names become keys, file names, metric
 * labels and URL parts, so anything outside a small alphabet is refused at
 * the door with a message that says what was expected.
 */
#include <string.h>
#include <sys/random.h>

#include "core/error.h"
#include "core/internal.h"
#include "tidings/event.h"

static int is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_word(char c)
{
    return is_alpha(c) || (c >= '0' && c <= '9') || c == '_';
}

static int is_stream_id_char(char c)
{
    return is_word(c) || c == '.' || c == ':' || c == '-';
}

/* Length of the category at the start of s, or 0 if s does not start with one. */
static size_t category_length(const char *s)
{
    size_t n = 0;
    if (!is_alpha(s[0]))
        return 0;
    while (is_word(s[n]))
        n++;
    return n;
}

int td_stream_check(const char *stream)
{
    if (stream == NULL || stream[0] == '\0')
        return td_error__set(TD_EINVAL, "missing stream name");
    size_t cat = category_length(stream);
    if (cat == 0 || cat > TD_CATEGORY_MAX || stream[cat] != '-')
        return td_error__set(TD_EINVAL,
                             "invalid stream name '%.80s': expected <category>-<id>, "
                             "the category 1..64 of [A-Za-z0-9_] starting with a letter",
                             stream);
    const char *id = stream + cat + 1;
    size_t n = 0;
    while (is_stream_id_char(id[n]))
        n++;
    if (n == 0 || id[n] != '\0' || n > TD_REF_ID_MAX)
        return td_error__set(TD_EINVAL,
                             "invalid stream name '%.80s': the id after the category must be "
                             "1..128 of [A-Za-z0-9_.:-]",
                             stream);
    return 0;
}

int td_category_check(const char *category)
{
    size_t n = category ? category_length(category) : 0;
    if (n == 0 || category[n] != '\0' || n > TD_CATEGORY_MAX)
        return td_error__set(TD_EINVAL,
                             "invalid category or collection '%.80s': expected 1..64 of "
                             "[A-Za-z0-9_] starting with a letter",
                             category ? category : "");
    return 0;
}

int td_stream_category(char buf[TD_CATEGORY_MAX + 1], const char *stream)
{
    int error = td_stream_check(stream);
    if (error < 0)
        return error;
    size_t n = category_length(stream);
    memcpy(buf, stream, n);
    buf[n] = '\0';
    return 0;
}

/* A name of 1..max characters, the first a letter, the rest from extra or
 * [A-Za-z0-9_]. */
static int check_name(const char *what, const char *name, size_t max, const char *extra)
{
    size_t n = 0;
    if (name == NULL || name[0] == '\0')
        return td_error__set(TD_EINVAL, "missing %s", what);
    if (is_alpha(name[0]))
        for (n = 1; name[n] && (is_word(name[n]) || strchr(extra, name[n])); n++)
            ;
    if (n == 0 || name[n] != '\0' || n > max)
        return td_error__set(TD_EINVAL,
                             "invalid %s '%.80s': expected 1..%zu of [A-Za-z0-9_%s] starting "
                             "with a letter",
                             what, name, max, extra);
    return 0;
}

int td_field__check(const char *field)
{
    return check_name("data field", field, TD_FIELD_MAX, "");
}

int td_type_check(const char *type)
{
    return check_name("event type", type, TD_TYPE_MAX, ".");
}

int td_source_check(const char *source)
{
    return check_name("source", source, TD_SOURCE_MAX, ".-");
}

int td_ref_id_check(const char *id)
{
    size_t n = 0;
    if (id == NULL || id[0] == '\0')
        return td_error__set(TD_EINVAL, "empty correlation or causation id");
    for (; id[n]; n++)
        if (id[n] < 0x21 || id[n] > 0x7e)
            return td_error__set(TD_EINVAL, "correlation and causation ids must be printable ASCII "
                                            "without spaces");
    if (n > TD_REF_ID_MAX)
        return td_error__set(TD_EINVAL, "correlation or causation id longer than %d bytes",
                             TD_REF_ID_MAX);
    return 0;
}

const char *td_event_kind_name(td_event_kind kind)
{
    return kind == TD_KIND_INTEGRATION ? "integration" : "domain";
}

int td_event_kind_parse(td_event_kind *out, const char *name)
{
    if (name && strcmp(name, "domain") == 0)
        *out = TD_KIND_DOMAIN;
    else if (name && strcmp(name, "integration") == 0)
        *out = TD_KIND_INTEGRATION;
    else
        return td_error__set(TD_EINVAL, "invalid kind '%.40s': expected domain or integration",
                             name ? name : "");
    return 0;
}
