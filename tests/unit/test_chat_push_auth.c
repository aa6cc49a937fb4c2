
/*
 * Unit tests for src/workers/chat_push_auth.c: the service-account file
 * and the .p8 key written here with keys made here, the OAuth2 token
 * fetched from a token endpoint played by a thread of this test on
 * 127.0.0.1 (no other network), the assertion it receives verified with
 * the public key.
 */


#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "chat_base64.h"
#include "chat_push_auth.h"


#define CHAT_TEST_NOW   1700000000000LL
#define CHAT_TEST_REQ   16384
#define CHAT_TEST_HEX64                                                       \
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"


/* the token endpoint: answers[i] to the i-th connection */
typedef struct {
    int          fd;
    int          port;
    int          n;
    const char  *answers[4];
    char         requests[4][CHAT_TEST_REQ];
    int          served;
    pthread_t    thread;
} chat_test_server_t;


static char       chat_test_dir[64];
static EVP_PKEY  *chat_test_rsa;
static EVP_PKEY  *chat_test_ec;


static void *
chat_test_serve(void *data)
{
    int                  c, i;
    char                *req, *hdr_end, *cl;
    const char          *nl;
    size_t               len, need;
    ssize_t              r;
    chat_test_server_t  *s;

    s = data;

    for (i = 0; i < s->n; i++) {
        c = accept(s->fd, NULL, NULL);
        if (c < 0) {
            break;
        }

        req = s->requests[i];
        len = 0;
        need = 0;

        for ( ;; ) {
            r = read(c, req + len, CHAT_TEST_REQ - 1 - len);
            if (r <= 0) {
                break;
            }

            len += r;
            req[len] = '\0';

            hdr_end = strstr(req, "\r\n\r\n");
            if (hdr_end == NULL) {
                continue;
            }

            cl = strcasestr(req, "content-length:");
            need = (hdr_end - req) + 4 + (cl ? strtoul(cl + 15, NULL, 10)
                                             : 0);
            if (len >= need) {
                break;
            }
        }

        /*
         * counted before the answer goes out: the client may check the
         * count as soon as it has read the answer
         */
        __atomic_fetch_add(&s->served, 1, __ATOMIC_SEQ_CST);

        /* the answer's first line is the status, the rest the body */
        nl = strchr(s->answers[i], '\n');
        dprintf(c, "HTTP/1.1 %.*s\r\ncontent-type: application/json\r\n"
                "content-length: %zu\r\nconnection: close\r\n\r\n%s",
                (int) (nl - s->answers[i]), s->answers[i], strlen(nl + 1),
                nl + 1);

        close(c);
    }

    return NULL;
}


static void
chat_test_server_start(chat_test_server_t *s)
{
    socklen_t           sl;
    struct sockaddr_in  sa;

    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->fd >= 0);

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    assert_int_equal(bind(s->fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
    assert_int_equal(listen(s->fd, 4), 0);

    sl = sizeof(sa);
    assert_int_equal(getsockname(s->fd, (struct sockaddr *) &sa, &sl), 0);
    s->port = ntohs(sa.sin_port);

    assert_int_equal(pthread_create(&s->thread, NULL, chat_test_serve, s), 0);
}


static void
chat_test_server_stop(chat_test_server_t *s)
{
    shutdown(s->fd, SHUT_RDWR);
    close(s->fd);
    pthread_join(s->thread, NULL);
}


static char *
chat_test_pem(EVP_PKEY *key)
{
    BIO   *b;
    char  *p, *out;
    long   n;

    b = BIO_new(BIO_s_mem());
    assert_non_null(b);
    assert_int_equal(PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL,
                                              NULL), 1);
    n = BIO_get_mem_data(b, &p);
    out = strndup(p, n);
    BIO_free(b);

    return out;
}


static void
chat_test_write(const char *name, const char *text, char *path,
    size_t size)
{
    FILE  *f;

    snprintf(path, size, "%s/%s", chat_test_dir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}


/* a service-account file with the test's RSA key */

static void
chat_test_sa(const char *name, const char *token_uri, const char *type,
    char *path, size_t size)
{
    char    *pem, *text;
    json_t  *o;

    pem = chat_test_pem(chat_test_rsa);
    o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type", type,
                  "project_id", "proj-1", "private_key_id", "abc",
                  "private_key", pem, "client_email",
                  "push@proj-1.iam.gserviceaccount.com", "token_uri",
                  token_uri);
    assert_non_null(o);
    text = json_dumps(o, JSON_INDENT(2));
    chat_test_write(name, text, path, size);
    free(text);
    json_decref(o);
    free(pem);
}


static int
chat_test_setup(void **state)
{
    (void) state;

    snprintf(chat_test_dir, sizeof(chat_test_dir), "/tmp/chat-push-XXXXXX");
    if (mkdtemp(chat_test_dir) == NULL) {
        return -1;
    }

    chat_test_rsa = EVP_RSA_gen(2048);
    chat_test_ec = EVP_EC_gen("P-256");

    return chat_test_rsa && chat_test_ec ? 0 : -1;
}


static int
chat_test_teardown(void **state)
{
    char  cmd[128];

    (void) state;

    EVP_PKEY_free(chat_test_rsa);
    EVP_PKEY_free(chat_test_ec);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", chat_test_dir);

    return system(cmd) == 0 ? 0 : -1;
}


/* --- FCM --------------------------------------------------------------- */

static void
chat_test_fcm_open(void **state)
{
    char             path[256], err[256];
    chat_push_fcm_t  f;

    (void) state;

    chat_test_sa("sa.json", "https://oauth2.googleapis.com/token",
                 "service_account", path, sizeof(path));

    assert_int_equal(chat_push_fcm_open(&f, path, NULL, NULL, err,
                                        sizeof(err)), 0);
    assert_string_equal(f.url, "https://fcm.googleapis.com/v1/projects/"
                               "proj-1/messages:send");
    assert_string_equal(f.token_uri, "https://oauth2.googleapis.com/token");
    assert_string_equal(f.client_email,
                        "push@proj-1.iam.gserviceaccount.com");
    chat_push_fcm_close(&f);

    assert_int_equal(chat_push_fcm_open(&f, path, "http://127.0.0.1:9/",
                                        NULL, err, sizeof(err)), 0);
    assert_string_equal(f.url, "http://127.0.0.1:9/v1/projects/proj-1/"
                               "messages:send");
    chat_push_fcm_close(&f);

    /* endpoints with a path, another scheme */
    assert_int_equal(chat_push_fcm_open(&f, path, "http://127.0.0.1:9/x",
                                        NULL, err, sizeof(err)), -1);
    assert_int_equal(chat_push_fcm_open(&f, path, "ftp://h", NULL, err,
                                        sizeof(err)), -1);
    assert_int_equal(chat_push_fcm_open(&f, path, "http://", NULL, err,
                                        sizeof(err)), -1);
    assert_int_equal(chat_push_fcm_open(&f, path, "http://a@b", NULL, err,
                                        sizeof(err)), -1);

    /* the file's token_uri must be https; the explicit override may not */
    chat_test_sa("sa-http.json", "http://oauth2.example/token",
                 "service_account", path, sizeof(path));
    assert_int_equal(chat_push_fcm_open(&f, path, NULL, NULL, err,
                                        sizeof(err)), -1);
    assert_non_null(strstr(err, "token_uri"));
    assert_int_equal(chat_push_fcm_open(&f, path, NULL,
                                        "http://127.0.0.1:1/token", err,
                                        sizeof(err)), 0);
    assert_string_equal(f.token_uri, "http://127.0.0.1:1/token");
    chat_push_fcm_close(&f);
    assert_int_equal(chat_push_fcm_open(&f, path, NULL, "file:///etc/x",
                                        err, sizeof(err)), -1);

    /* not a service account, not JSON, missing */
    chat_test_sa("sa-user.json", "https://oauth2.googleapis.com/token",
                 "authorized_user", path, sizeof(path));
    assert_int_equal(chat_push_fcm_open(&f, path, NULL, NULL, err,
                                        sizeof(err)), -1);
    chat_test_write("sa-bad.json", "{\"project_id\":", path, sizeof(path));
    assert_int_equal(chat_push_fcm_open(&f, path, NULL, NULL, err,
                                        sizeof(err)), -1);
    chat_test_write("sa-nokey.json", "{\"type\":\"service_account\","
                    "\"project_id\":\"p\",\"client_email\":\"a@b\","
                    "\"private_key\":\"-----BEGIN PRIVATE KEY-----\\nAAA\\n"
                    "-----END PRIVATE KEY-----\\n\",\"token_uri\":"
                    "\"https://x/t\"}", path, sizeof(path));
    assert_int_equal(chat_push_fcm_open(&f, path, NULL, NULL, err,
                                        sizeof(err)), -1);
    assert_non_null(strstr(err, "private_key"));
    assert_int_equal(chat_push_fcm_open(&f, "/nonexistent/sa.json", NULL,
                                        NULL, err, sizeof(err)), -1);
    chat_push_fcm_close(&f);
}


/* the assertion in a form body, verified with the test's key */

static void
chat_test_check_assertion(const char *req, const char *aud)
{
    int             ok;
    char           *a, *d1, *d2, expect[512];
    size_t          n;
    EVP_MD_CTX     *md;
    unsigned char   buf[1024];

    a = strstr(req, "\r\n\r\ngrant_type=urn%3Aietf%3Aparams%3Aoauth%3A"
                    "grant-type%3Ajwt-bearer&assertion=");
    assert_non_null(a);
    a = strstr(a, "assertion=") + 10;

    d1 = strchr(a, '.');
    d2 = strrchr(a, '.');
    assert_true(d1 && d2 && d1 != d2);

    n = chat_base64url_decode(d1 + 1, d2 - d1 - 1, buf);
    buf[n] = '\0';
    snprintf(expect, sizeof(expect),
             "{\"iss\":\"push@proj-1.iam.gserviceaccount.com\","
             "\"scope\":\"https://www.googleapis.com/auth/firebase."
             "messaging\",\"aud\":\"%s\",\"iat\":1700000000,"
             "\"exp\":1700003600}", aud);
    assert_string_equal((char *) buf, expect);

    assert_int_equal(chat_base64url_check(d2 + 1, strlen(d2 + 1)), 0);
    n = chat_base64url_decode(d2 + 1, strlen(d2 + 1), buf);

    md = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL,
                                          chat_test_rsa), 1);
    ok = EVP_DigestVerify(md, buf, n, (unsigned char *) a, d2 - a);
    EVP_MD_CTX_free(md);
    assert_int_equal(ok, 1);

    assert_non_null(strcasestr(req, "content-type: "
                                    "application/x-www-form-urlencoded"));
    assert_true(strncmp(req, "POST /token HTTP/1.1\r\n", 22) == 0);
}


static void
chat_test_fcm_bearer(void **state)
{
    char                 path[256], err[256], uri[64];
    const char          *b;
    chat_push_fcm_t      f;
    struct curl_slist   *list, *l;
    chat_test_server_t   s;

    (void) state;

    memset(&s, 0, sizeof(s));
    s.n = 3;
    s.answers[0] = "200 OK\n{\"access_token\":\"ya29.first\","
                   "\"expires_in\":3599,\"token_type\":\"Bearer\"}";
    s.answers[1] = "400 Bad Request\n{\"error\":\"invalid_grant\","
                   "\"error_description\":\"Invalid JWT Signature.\"}";
    s.answers[2] = "200 OK\n{\"access_token\":\"ya29.second\","
                   "\"expires_in\":3599}";
    chat_test_server_start(&s);

    snprintf(uri, sizeof(uri), "http://127.0.0.1:%d/token", s.port);
    chat_test_sa("sa.json", "https://oauth2.googleapis.com/token",
                 "service_account", path, sizeof(path));
    assert_int_equal(chat_push_fcm_open(&f, path, NULL, uri, err,
                                        sizeof(err)), 0);

    b = chat_push_fcm_bearer(&f, CHAT_TEST_NOW, err, sizeof(err));
    assert_non_null(b);
    assert_string_equal(b, "ya29.first");
    assert_int_equal(__atomic_load_n(&s.served, __ATOMIC_SEQ_CST), 1);
    chat_test_check_assertion(s.requests[0], uri);

    /* cached until 5 minutes before it expires */
    b = chat_push_fcm_bearer(&f, CHAT_TEST_NOW + (3599 - 301) * 1000LL, err,
                             sizeof(err));
    assert_string_equal(b, "ya29.first");
    assert_int_equal(__atomic_load_n(&s.served, __ATOMIC_SEQ_CST), 1);

    list = NULL;
    assert_int_equal(chat_push_fcm_headers(&f, CHAT_TEST_NOW, &list, err,
                                           sizeof(err)), 0);
    assert_string_equal(list->data, "authorization: Bearer ya29.first");
    assert_string_equal(list->next->data, "content-type: application/json");
    assert_null(list->next->next);

    /* refused on REAUTH: the endpoint's error, never the assertion */
    chat_push_fcm_reauth(&f);
    assert_null(chat_push_fcm_bearer(&f, CHAT_TEST_NOW, err, sizeof(err)));
    assert_string_equal(err, "token endpoint: HTTP 400 invalid_grant");

    /* the next call asks again; the headers go after what list holds */
    assert_int_equal(chat_push_fcm_headers(&f, CHAT_TEST_NOW, &list, err,
                                           sizeof(err)), 0);
    l = list->next->next;
    assert_non_null(l);
    assert_string_equal(l->data, "authorization: Bearer ya29.second");
    curl_slist_free_all(list);

    chat_test_server_stop(&s);
    assert_int_equal(__atomic_load_n(&s.served, __ATOMIC_SEQ_CST), 3);

    /* the endpoint gone */
    chat_push_fcm_reauth(&f);
    assert_null(chat_push_fcm_bearer(&f, CHAT_TEST_NOW, err, sizeof(err)));
    assert_non_null(strstr(err, "token endpoint: "));

    chat_push_fcm_close(&f);
}


/* --- APNs -------------------------------------------------------------- */

static void
chat_test_apns_all(void **state)
{
    char               path[256], rsa[256], err[256], url[512], jwt[1024];
    char              *pem;
    const char        *t;
    chat_push_apns_t   a;
    chat_push_note_t   n;
    struct curl_slist *list, *l;

    (void) state;

    pem = chat_test_pem(chat_test_ec);
    chat_test_write("AuthKey.p8", pem, path, sizeof(path));
    free(pem);
    pem = chat_test_pem(chat_test_rsa);
    chat_test_write("rsa.p8", pem, rsa, sizeof(rsa));
    free(pem);

    assert_int_equal(chat_push_apns_open(&a, rsa, "ABC123DEFG", "DEF123GHIJ",
                                         "com.example.chat", NULL, err,
                                         sizeof(err)), -1);
    assert_int_equal(chat_push_apns_open(&a, path, "ABC 123", "DEF123GHIJ",
                                         "com.example.chat", NULL, err,
                                         sizeof(err)), -1);
    assert_int_equal(chat_push_apns_open(&a, path, "ABC123DEFG", "",
                                         "com.example.chat", NULL, err,
                                         sizeof(err)), -1);
    assert_int_equal(chat_push_apns_open(&a, path, "ABC123DEFG", "DEF123GHIJ",
                                         "com.example/chat", NULL, err,
                                         sizeof(err)), -1);
    assert_int_equal(chat_push_apns_open(&a, path, "ABC123DEFG", "DEF123GHIJ",
                                         "com.example.chat",
                                         "https://h/3/device", err,
                                         sizeof(err)), -1);

    assert_int_equal(chat_push_apns_open(&a, path, "ABC123DEFG", "DEF123GHIJ",
                                         "com.example.chat", NULL, err,
                                         sizeof(err)), 0);
    assert_string_equal(a.endpoint, "https://api.push.apple.com");

    assert_int_equal(chat_push_apns_url(&a, CHAT_TEST_HEX64, url,
                                        sizeof(url)),
                     26 + 10 + 64);
    assert_string_equal(url, "https://api.push.apple.com/3/device/"
                             CHAT_TEST_HEX64);
    assert_int_equal(chat_push_apns_url(&a, "../x", url, sizeof(url)), -1);
    assert_int_equal(chat_push_apns_url(&a, CHAT_TEST_HEX64, url, 50), -1);

    /* the token: cached for 50 minutes, renewed after or on REAUTH */
    t = chat_push_apns_token(&a, CHAT_TEST_NOW, err, sizeof(err));
    assert_non_null(t);
    snprintf(jwt, sizeof(jwt), "%s", t);
    t = chat_push_apns_token(&a, CHAT_TEST_NOW + 49 * 60000LL, err,
                             sizeof(err));
    assert_string_equal(t, jwt);
    t = chat_push_apns_token(&a, CHAT_TEST_NOW + 50 * 60000LL, err,
                             sizeof(err));
    assert_string_not_equal(t, jwt);
    snprintf(jwt, sizeof(jwt), "%s", t);
    chat_push_apns_reauth(&a);
    t = chat_push_apns_token(&a, CHAT_TEST_NOW + 50 * 60000LL, err,
                             sizeof(err));
    assert_string_not_equal(t, jwt);
    snprintf(jwt, sizeof(jwt), "%s", t);

    memset(&n, 0, sizeof(n));
    n.conv = "g:5";
    list = NULL;
    assert_int_equal(chat_push_apns_headers(&a, &n, CHAT_TEST_NOW
                                            + 50 * 60000LL, &list, err,
                                            sizeof(err)), 0);
    l = list;
    assert_true(strncmp(l->data, "authorization: bearer ", 22) == 0);
    assert_string_equal(l->data + 22, jwt);
    l = l->next;
    assert_string_equal(l->data, "apns-topic: com.example.chat");
    l = l->next;
    assert_string_equal(l->data, "apns-push-type: alert");
    l = l->next;
    assert_string_equal(l->data, "apns-priority: 10");
    l = l->next;
    assert_string_equal(l->data, "apns-expiration: 1700089400");
    l = l->next;
    assert_string_equal(l->data, "apns-collapse-id: g:5");
    l = l->next;
    assert_string_equal(l->data, "content-type: application/json");
    assert_null(l->next);
    curl_slist_free_all(list);

    /* no collapse id that is not one */
    n.conv = "g:5\r\nx: y";
    list = NULL;
    assert_int_equal(chat_push_apns_headers(&a, &n, CHAT_TEST_NOW, &list,
                                            err, sizeof(err)), 0);
    for (l = list; l; l = l->next) {
        assert_null(strstr(l->data, "apns-collapse-id"));
        assert_null(strchr(l->data, '\n'));
    }

    curl_slist_free_all(list);
    chat_push_apns_close(&a);

    assert_int_equal(chat_push_apns_open(&a, path, "ABC123DEFG", "DEF123GHIJ",
                                         "com.example.chat",
                                         "http://127.0.0.1:8443", err,
                                         sizeof(err)), 0);
    assert_int_equal(chat_push_apns_url(&a, CHAT_TEST_HEX64, url,
                                        sizeof(url)), 21 + 10 + 64);
    chat_push_apns_close(&a);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(chat_test_fcm_open),
        cmocka_unit_test(chat_test_fcm_bearer),
        cmocka_unit_test(chat_test_apns_all),
    };

    curl_global_init(CURL_GLOBAL_DEFAULT);

    return cmocka_run_group_tests(tests, chat_test_setup, chat_test_teardown);
}
