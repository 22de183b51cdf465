/* Minimal JSON reader for the firmware tests (see json_min.h). */
#include "json_min.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *P;

static void die(const char *what)
{
    fprintf(stderr, "json: %s near: %.40s\n", what, P);
    exit(2);
}

static void ws(void)
{
    while (*P == ' ' || *P == '\n' || *P == '\r' || *P == '\t') {
        P++;
    }
}

static jval_t *parse(void);

static void put_utf8(char **o, unsigned cp)
{
    char *q = *o;
    if (cp < 0x80) {
        *q++ = (char)cp;
    } else if (cp < 0x800) {
        *q++ = (char)(0xC0 | (cp >> 6));
        *q++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *q++ = (char)(0xE0 | (cp >> 12));
        *q++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *q++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *q++ = (char)(0xF0 | (cp >> 18));
        *q++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *q++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *q++ = (char)(0x80 | (cp & 0x3F));
    }
    *o = q;
}

static char *parse_str(void)
{
    if (*P != '"') {
        die("string expected");
    }
    P++;
    char *out = malloc(strlen(P) + 1);
    char *o = out;
    while (*P != '"') {
        if (!*P) {
            die("unterminated string");
        }
        if (*P == '\\') {
            P++;
            char e = *P++;
            switch (e) {
            case 'n': *o++ = '\n'; break;
            case 't': *o++ = '\t'; break;
            case 'r': *o++ = '\r'; break;
            case 'b': *o++ = '\b'; break;
            case 'f': *o++ = '\f'; break;
            case 'u': {
                unsigned cp = (unsigned)strtoul((char[5]){P[0], P[1], P[2], P[3], 0}, NULL, 16);
                P += 4;
                if (cp >= 0xD800 && cp < 0xDC00 && P[0] == '\\' && P[1] == 'u') {
                    unsigned lo =
                        (unsigned)strtoul((char[5]){P[2], P[3], P[4], P[5], 0}, NULL, 16);
                    P += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                put_utf8(&o, cp);
                break;
            }
            default: *o++ = e;
            }
        } else {
            *o++ = *P++;
        }
    }
    P++;
    *o = 0;
    return out;
}

static jval_t *parse(void)
{
    ws();
    jval_t *v = calloc(1, sizeof *v);
    if (*P == '{' || *P == '[') {
        int obj = *P == '{';
        char close = obj ? '}' : ']';
        v->type = obj ? J_OBJ : J_ARR;
        P++;
        ws();
        size_t cap = 8;
        v->items = malloc(cap * sizeof *v->items);
        v->keys = obj ? malloc(cap * sizeof *v->keys) : NULL;
        while (*P != close) {
            if (v->n == cap) {
                cap *= 2;
                v->items = realloc(v->items, cap * sizeof *v->items);
                if (obj) {
                    v->keys = realloc(v->keys, cap * sizeof *v->keys);
                }
            }
            if (obj) {
                ws();
                v->keys[v->n] = parse_str();
                ws();
                if (*P++ != ':') {
                    die("':' expected");
                }
            }
            v->items[v->n++] = parse();
            ws();
            if (*P == ',') {
                P++;
                ws();
            } else if (*P != close) {
                die("',' expected");
            }
        }
        P++;
    } else if (*P == '"') {
        v->type = J_STR;
        v->str = parse_str();
    } else if (!strncmp(P, "true", 4) || !strncmp(P, "false", 5)) {
        v->type = J_BOOL;
        v->boolean = *P == 't';
        P += v->boolean ? 4 : 5;
    } else if (!strncmp(P, "null", 4)) {
        v->type = J_NULL;
        P += 4;
    } else {
        char *end;
        v->type = J_NUM;
        v->num = strtod(P, &end);
        if (end == P) {
            die("value expected");
        }
        P = end;
    }
    return v;
}

jval_t *json_load_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(2);
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
        die("short read");
    }
    buf[n] = 0;
    fclose(f);
    P = buf;
    return parse();
}

const jval_t *json_get(const jval_t *o, const char *key)
{
    if (!o || o->type != J_OBJ) {
        return NULL;
    }
    for (size_t i = 0; i < o->n; i++) {
        if (!strcmp(o->keys[i], key)) {
            return o->items[i];
        }
    }
    return NULL;
}

const jval_t *json_at(const jval_t *a, size_t i)
{
    return (a && a->type == J_ARR && i < a->n) ? a->items[i] : NULL;
}

const char *json_str(const jval_t *v, const char *key)
{
    const jval_t *s = json_get(v, key);
    return (s && s->type == J_STR) ? s->str : NULL;
}

long long json_int(const jval_t *v, const char *key, long long dflt)
{
    const jval_t *s = json_get(v, key);
    return (s && s->type == J_NUM) ? (long long)s->num : dflt;
}

uint8_t *json_hex(const char *hex, size_t *len)
{
    size_t n = strlen(hex) / 2;
    uint8_t *out = malloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        unsigned b;
        sscanf(hex + 2 * i, "%2x", &b);
        out[i] = (uint8_t)b;
    }
    *len = n;
    return out;
}
