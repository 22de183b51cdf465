/* A minimal JSON reader for the tests (reads tests/vectors/wire-v1.json). Test code
 * only: it allocates, and exits with a message on malformed input. */
#ifndef JSON_MIN_H
#define JSON_MIN_H

#include <stddef.h>
#include <stdint.h>

typedef enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } jtype_t;

typedef struct jval {
    jtype_t type;
    double num;
    int boolean;
    char *str; /* J_STR: utf-8, NUL-terminated */
    size_t n;  /* J_ARR / J_OBJ: number of items */
    char **keys;
    struct jval **items;
} jval_t;

jval_t *json_load_file(const char *path);
const jval_t *json_get(const jval_t *obj, const char *key); /* NULL when absent */
const jval_t *json_at(const jval_t *arr, size_t i);
const char *json_str(const jval_t *v, const char *key);     /* NULL when absent */
long long json_int(const jval_t *v, const char *key, long long dflt);
/* hex string -> bytes (malloc'd); *len set */
uint8_t *json_hex(const char *hex, size_t *len);

#endif
