
/*
 * Copyright (C) ngx_chat authors
 *
 * The node's drain flag in shared memory: see ngx_chat_drain.h.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat.h"
#include "ngx_chat_drain.h"


typedef struct {
    ngx_atomic_t               draining;
} ngx_chat_drain_shm_t;


static ngx_int_t ngx_chat_drain_init_zone(ngx_shm_zone_t *zone, void *data);


static ngx_str_t              ngx_chat_drain_zone_name =
    ngx_string("chat_admin");
static ngx_chat_drain_shm_t  *ngx_chat_drain_shm;


/*
 * A zone of its own, so the flag reaches every worker of the node the
 * moment one of them learns it, the one whose client has just closed
 * included; a reload keeps the zone (same name and size)
 */

ngx_int_t
ngx_chat_drain_add_zone(ngx_conf_t *cf)
{
    ngx_shm_zone_t  *zone;

    zone = ngx_shared_memory_add(cf, &ngx_chat_drain_zone_name,
                                 8 * ngx_pagesize, &ngx_http_chat_module);
    if (zone == NULL) {
        return NGX_ERROR;
    }

    zone->init = ngx_chat_drain_init_zone;

    return NGX_OK;
}


static ngx_int_t
ngx_chat_drain_init_zone(ngx_shm_zone_t *zone, void *data)
{
    ngx_slab_pool_t       *shpool;
    ngx_chat_drain_shm_t  *sh;

    if (data) {
        /* a reload: the old flag holds */
        zone->data = data;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) zone->shm.addr;

    if (zone->shm.exists) {
        zone->data = shpool->data;
        return NGX_OK;
    }

    sh = ngx_slab_calloc(shpool, sizeof(ngx_chat_drain_shm_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    shpool->data = sh;
    zone->data = sh;

    return NGX_OK;
}


void
ngx_chat_drain_init(ngx_cycle_t *cycle)
{
    ngx_uint_t        i;
    ngx_shm_zone_t   *zone;
    ngx_list_part_t  *part;

    ngx_chat_drain_shm = NULL;

    part = &cycle->shared_memory.part;
    zone = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            zone = part->elts;
            i = 0;
        }

        if (zone[i].tag == &ngx_http_chat_module
            && zone[i].shm.name.len == ngx_chat_drain_zone_name.len
            && ngx_strncmp(zone[i].shm.name.data,
                           ngx_chat_drain_zone_name.data,
                           ngx_chat_drain_zone_name.len)
               == 0)
        {
            ngx_chat_drain_shm = zone[i].data;
        }
    }
}


ngx_uint_t
ngx_chat_draining(void)
{
    return ngx_chat_drain_shm ? ngx_chat_drain_shm->draining != 0 : 0;
}


void
ngx_chat_drain_set(ngx_uint_t draining)
{
    if (ngx_chat_drain_shm) {
        ngx_chat_drain_shm->draining = draining;
    }
}
