/*
 * test_keyring.c: personal data sealed per data subject (seal.h) on a real
 * store: the master key file and its check, sealing and opening, what the
 * stored bytes hold, forgetting (fields read as erased, nothing sealed
 * afresh, the audit chain untouched), tampering, and the lookup hash.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support.h"

static const char *const personal[] = {"email", "full_name", NULL};

static td_keyring *keyring_on(td_store *store, unsigned char fill)
{
    unsigned char master[TD_MASTER_KEY_BYTES];
    td_keyring *k = NULL;
    memset(master, fill, sizeof master);
    assert_td_ok(td_keyring_new(&k, store, master));
    return k;
}

static json_t *person(void)
{
    return json_pack("{s:s,s:s,s:s}", "user_id", "u1", "email", "ada@example.com", "full_name",
                     "Ada Lovelace");
}

typedef struct seal_args {
    td_keyring *k;
    const char *subject;
    json_t *data;
    unsigned flags;
    int result;
} seal_args;

static int seal_unit(td_txn *txn, void *payload)
{
    seal_args *a = payload;
    a->result = td_keyring_seal(a->k, txn, a->subject, a->data, personal, a->flags);
    return a->result < 0 ? a->result : 0;
}

static int seal_in_unit(td_store *store, td_keyring *k, const char *subject, json_t *data,
                        unsigned flags)
{
    seal_args a = {k, subject, data, flags, 0};
    int error = td_transact(store, seal_unit, &a);
    return error < 0 ? error : a.result;
}

static int forget_unit(td_txn *txn, void *payload)
{
    seal_args *a = payload;
    return td_keyring_forget(a->k, txn, a->subject);
}

static void forget(td_store *store, td_keyring *k, const char *subject)
{
    seal_args a = {k, subject, NULL, 0, 0};
    assert_td_ok(td_transact(store, forget_unit, &a));
}

static void test_seal_and_open_round_trip(void **state)
{
    (void)state;
    td_store *store = tt_fixture("seal");
    td_keyring *k = keyring_on(store, 7);
    json_t *data = person();
    assert_int_equal(seal_in_unit(store, k, "user-u1", data, TD_SEAL_CREATE_KEY), 0);
    /* the fields moved into the member; only their names and the subject are readable */
    assert_null(json_object_get(data, "email"));
    assert_null(json_object_get(data, "full_name"));
    assert_string_equal(td_sealed_subject(data), "user-u1");
    char *text = json_dumps(data, JSON_COMPACT);
    assert_null(strstr(text, "ada@example.com"));
    assert_null(strstr(text, "Lovelace"));
    assert_non_null(strstr(text, "\"fields\":[\"email\",\"full_name\"]"));
    free(text);
    /* opening, outside a unit, gives them back and removes the member */
    assert_int_equal(td_keyring_open(k, NULL, data), 0);
    json_t *expected = person();
    assert_true(json_equal(data, expected));
    json_decref(expected);
    /* sealing data without any of the fields changes nothing */
    json_t *other = json_pack("{s:i}", "n", 1);
    assert_int_equal(seal_in_unit(store, k, "user-u1", other, 0), 0);
    assert_int_equal(json_object_size(other), 1);
    json_decref(other);
    json_decref(data);
    td_keyring_free(k);
    tt_fixture_free(store);
}

static void test_subject_without_key(void **state)
{
    (void)state;
    td_store *store = tt_fixture("seal");
    td_keyring *k = keyring_on(store, 7);
    json_t *data = person();
    /* no key and not asked to make one: refused, data unchanged */
    assert_td_code(seal_in_unit(store, k, "user-none", data, 0), TD_ENOTFOUND);
    assert_string_equal(json_string_value(json_object_get(data, "email")), "ada@example.com");
    /* outside a unit no key can be made */
    assert_td_code(td_keyring_seal(k, NULL, "user-none", data, personal, TD_SEAL_CREATE_KEY),
                   TD_EINVAL);
    /* sealed twice is refused */
    assert_int_equal(seal_in_unit(store, k, "user-x", data, TD_SEAL_CREATE_KEY), 0);
    assert_td_code(seal_in_unit(store, k, "user-x", data, TD_SEAL_CREATE_KEY), TD_EEXISTS);
    /* a bad subject name */
    json_t *again = person();
    assert_td_code(seal_in_unit(store, k, "has space", again, TD_SEAL_CREATE_KEY), TD_EINVAL);
    json_decref(again);
    json_decref(data);
    td_keyring_free(k);
    tt_fixture_free(store);
}

typedef struct found {
    char *data;
} found;

static int keep_data(const td_event *ev, void *payload)
{
    found *f = payload;
    free(f->data);
    f->data = strdup(ev->data);
    return 0;
}

static void test_forget_erases_everywhere_and_keeps_the_chain(void **state)
{
    (void)state;
    td_store *store = tt_fixture("seal");
    td_keyring *k = keyring_on(store, 7);
    json_t *data = person();
    assert_int_equal(seal_in_unit(store, k, "user-u1", data, TD_SEAL_CREATE_KEY), 0);
    char *text = json_dumps(data, JSON_COMPACT);
    td_event ev = tt_event("UserRegistered", text);
    assert_td_ok(td_store_append(store, "user-u1", TD_EXPECT_NO_STREAM, &ev, 1));
    tt_append(store, "other-1", "Noise", 1);
    /* before: the stored event opens */
    found f = {NULL};
    td_read_query q = TD_READ_QUERY_INIT;
    q.stream = "user-u1";
    assert_td_ok(td_store_read(store, &q, keep_data, &f));
    assert_string_equal(f.data, text);
    json_t *stored = json_loads(f.data, 0, NULL);
    assert_int_equal(td_keyring_open(k, NULL, stored), 0);
    assert_string_equal(json_string_value(json_object_get(stored, "email")), "ada@example.com");
    json_decref(stored);

    forget(store, k, "user-u1");
    forget(store, k, "user-u1"); /* twice is fine */
    bool gone = false;
    assert_td_ok(td_keyring_forgotten(k, NULL, "user-u1", &gone));
    assert_true(gone);

    /* after: the event's bytes are as they were, and it reads as erased */
    assert_td_ok(td_store_read(store, &q, keep_data, &f));
    assert_string_equal(f.data, text);
    stored = json_loads(f.data, 0, NULL);
    assert_int_equal(td_keyring_open(k, NULL, stored), 1);
    assert_true(json_is_null(json_object_get(stored, "email")));
    assert_true(json_is_null(json_object_get(stored, "full_name")));
    assert_true(json_is_true(json_object_get(stored, "_erased")));
    assert_null(json_object_get(stored, "_sealed"));
    assert_string_equal(json_string_value(json_object_get(stored, "user_id")), "u1");
    json_decref(stored);

    /* nothing is sealed for the subject again: new data is written erased */
    json_t *late = person();
    assert_int_equal(seal_in_unit(store, k, "user-u1", late, TD_SEAL_CREATE_KEY), 1);
    assert_true(json_is_null(json_object_get(late, "email")));
    assert_true(json_is_true(json_object_get(late, "_erased")));
    json_decref(late);

    /* the audit chain covers the bytes as stored: still whole */
    int64_t bad = -1, checked = 0;
    assert_td_ok(td_store_audit_verify(store, 0, 0, &bad, &checked));
    assert_int_equal(bad, 0);
    assert_int_equal(checked, 2);

    free(f.data);
    free(text);
    json_decref(data);
    td_keyring_free(k);
    tt_fixture_free(store);
}

static void test_tampered_or_moved_boxes_do_not_open(void **state)
{
    (void)state;
    td_store *store = tt_fixture("seal");
    td_keyring *k = keyring_on(store, 7);
    json_t *a = person(), *b = person();
    assert_int_equal(seal_in_unit(store, k, "user-a", a, TD_SEAL_CREATE_KEY), 0);
    assert_int_equal(seal_in_unit(store, k, "user-b", b, TD_SEAL_CREATE_KEY), 0);
    /* a's box relabelled as b's: the subject is associated data */
    json_t *moved = json_deep_copy(a);
    json_object_set_new(json_object_get(moved, "_sealed"), "subject", json_string("user-b"));
    assert_td_code(td_keyring_open(k, NULL, moved), TD_ECORRUPT);
    /* the field list is associated data too */
    json_t *relabelled = json_deep_copy(a);
    json_object_set_new(json_object_get(relabelled, "_sealed"), "fields",
                        json_pack("[s,s]", "full_name", "email"));
    assert_td_code(td_keyring_open(k, NULL, relabelled), TD_ECORRUPT);
    /* one character of the box changed */
    json_t *changed = json_deep_copy(a);
    char *box = strdup(json_string_value(json_object_get(json_object_get(a, "_sealed"), "box")));
    box[10] = box[10] == 'A' ? 'B' : 'A';
    json_object_set_new(json_object_get(changed, "_sealed"), "box", json_string(box));
    assert_td_code(td_keyring_open(k, NULL, changed), TD_ECORRUPT);
    /* a member without its parts */
    json_t *broken = json_pack("{s:{s:s}}", "_sealed", "subject", "user-a");
    assert_td_code(td_keyring_open(k, NULL, broken), TD_ECORRUPT);
    /* the untouched ones still open */
    assert_int_equal(td_keyring_open(k, NULL, a), 0);
    assert_int_equal(td_keyring_open(k, NULL, b), 0);
    free(box);
    json_decref(broken);
    json_decref(changed);
    json_decref(relabelled);
    json_decref(moved);
    json_decref(a);
    json_decref(b);
    td_keyring_free(k);
    tt_fixture_free(store);
}

static void test_master_key_is_checked(void **state)
{
    (void)state;
    td_store *store = tt_fixture("seal");
    bool in_use = true;
    assert_td_ok(td_keyring_in_use(store, &in_use));
    assert_false(in_use);
    td_keyring *k = keyring_on(store, 7);
    assert_td_ok(td_keyring_in_use(store, &in_use));
    assert_true(in_use);
    td_keyring_free(k);
    k = keyring_on(store, 7); /* the same key again: fine */
    td_keyring_free(k);
    unsigned char other[TD_MASTER_KEY_BYTES];
    memset(other, 8, sizeof other);
    k = NULL;
    assert_td_code(td_keyring_new(&k, store, other), TD_EINVAL);
    assert_non_null(strstr(td_error_last(), "does not match"));
    assert_null(k);
    tt_fixture_free(store);
}

static void test_lookup_hash(void **state)
{
    (void)state;
    td_store *store = tt_fixture("seal");
    td_keyring *k = keyring_on(store, 7);
    char a[TD_LOOKUP_HEX_LEN + 1], b[TD_LOOKUP_HEX_LEN + 1], c[TD_LOOKUP_HEX_LEN + 1];
    td_keyring_lookup(k, "ada@example.com", a);
    td_keyring_lookup(k, "ada@example.com", b);
    td_keyring_lookup(k, "bob@example.com", c);
    assert_int_equal(strlen(a), TD_LOOKUP_HEX_LEN);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    td_keyring_free(k);
    tt_fixture_free(store);
    /* another master key, another hash: it is keyed */
    store = tt_fixture("seal");
    k = keyring_on(store, 9);
    td_keyring_lookup(k, "ada@example.com", b);
    assert_string_not_equal(a, b);
    td_keyring_free(k);
    tt_fixture_free(store);
}

/* Data written before sealing is erased in place, as a forgotten
 * subject's sealed data reads. */
static void test_erase_in_place(void **state)
{
    (void)state;
    json_t *data = person();
    assert_int_equal(td_keyring_erase(data, personal), 1);
    assert_true(json_is_null(json_object_get(data, "email")));
    assert_true(json_is_null(json_object_get(data, "full_name")));
    assert_true(json_is_true(json_object_get(data, "_erased")));
    assert_string_equal(json_string_value(json_object_get(data, "user_id")), "u1");
    json_decref(data);
    json_t *none = json_pack("{s:i}", "n", 1);
    assert_int_equal(td_keyring_erase(none, personal), 0);
    assert_int_equal(json_object_size(none), 1);
    json_decref(none);
}

static void test_master_key_file(void **state)
{
    (void)state;
    char *dir = tt_tmpdir(), path[4200];
    unsigned char made[TD_MASTER_KEY_BYTES], read_back[TD_MASTER_KEY_BYTES];
    struct stat st;
    snprintf(path, sizeof path, "%s/master.key", dir);
    assert_td_code(td_master_key_read(read_back, path), TD_ENOTFOUND);
    assert_td_ok(td_master_key_create(made, path));
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, TD_MASTER_KEY_BYTES * 2 + 1);
    assert_td_ok(td_master_key_read(read_back, path));
    assert_memory_equal(made, read_back, sizeof made);
    /* never overwritten */
    assert_td_code(td_master_key_create(read_back, path), TD_EEXISTS);
    assert_td_ok(td_master_key_read(read_back, path));
    assert_memory_equal(made, read_back, sizeof made);
    /* readable by others: refused */
    assert_int_equal(chmod(path, 0644), 0);
    assert_td_code(td_master_key_read(read_back, path), TD_EINVAL);
    assert_non_null(strstr(td_error_last(), "0644"));
    /* not a key */
    snprintf(path, sizeof path, "%s/bad.key", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "not hex\n", 8), 8);
    close(fd);
    assert_td_code(td_master_key_read(read_back, path), TD_EINVAL);
    tt_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seal_and_open_round_trip),
        cmocka_unit_test(test_subject_without_key),
        cmocka_unit_test(test_forget_erases_everywhere_and_keeps_the_chain),
        cmocka_unit_test(test_tampered_or_moved_boxes_do_not_open),
        cmocka_unit_test(test_master_key_is_checked),
        cmocka_unit_test(test_lookup_hash),
        cmocka_unit_test(test_erase_in_place),
        cmocka_unit_test(test_master_key_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
