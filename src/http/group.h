/*
 * group: the servers of several loops that share one port (each with its
 * own listening socket, SO_REUSEPORT) under one connection cap, their
 * connections evened out.
 *
 * The kernel gives a new connection to one of the sockets by a hash of its
 * addresses, not by how many each loop serves: a few long-lived
 * connections (a main service's pool, a proxy's) can all land on one loop
 * of two, and a per-loop share of the cap leaves connections waiting in a
 * full loop's backlog while another has room. So:
 *
 *   claim a slot under the cap (or wait for one) -> accept -> place:
 *     kept       when no other member serves fewer than the accepting one
 *     handed     to the member serving the fewest, queued under its lock,
 *                its loop woken by its uv_async_t; it takes them and serves
 *   a connection ends -> its slot and its member's count are released;
 *                        one member waiting for a slot is woken (its own
 *                        first); finding its backlog empty, it gives the
 *                        slot back and the next is woken
 *
 * A member is closed until it joins and again once it leaves (its server
 * stops); nothing is handed to a closed member, and what waits for it when
 * it leaves is given back to it to close. Two members placing at once may
 * each read the other's count before it moves: the counts stay within a
 * connection or two of each other; the cap is exact (one atomic).
 *
 * Threading: every function may be called from any thread; a member's
 * wake handle is sent only under its lock, while the member has joined and
 * not left (so its loop may close the handle once it has left).
 */
#ifndef EXCHANGED_HTTP_GROUP_H
#define EXCHANGED_HTTP_GROUP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct http_group;

/* n members (>= 1), at most max_connections (>= 1) open over all of them. */
struct http_group *http_group_new(int n, unsigned max_connections);
/* After every member has left; closes any socket still queued. */
void http_group_free(struct http_group *g);

/* Member i is open to hand-offs from now on; wake is sent (on its loop)
 * when a connection is handed to it, and when a slot it waits for is given
 * back (http_group_claim_or_wait). */
void http_group_join(struct http_group *g, int i, uv_async_t *wake);
/* Member i takes no more hand-offs. Returns the sockets handed to it and
 * not yet taken (*fds, the caller's to free; NULL when none), for the
 * caller to close and to http_group_release one by one. A wake for a slot
 * sent to it and not yet run is passed on to a member waiting (if any). */
size_t http_group_leave(struct http_group *g, int i, int **fds);

/* A slot under the cap: 1 taken, 0 when the cap is reached. */
int http_group_claim(struct http_group *g);
/* The same for member i, which when the cap is reached (0) waits for a
 * slot given back anywhere: its wake is sent, and it must then claim again
 * and accept at once, giving the slot back (http_group_unclaim) when its
 * backlog is empty so that the next waiting member is woken; it may also
 * find the slot taken and wait again. No wake-up is lost: a slot given back
 * while member i registers is either claimed here or wakes a waiting member. */
int http_group_claim_or_wait(struct http_group *g, int i);
/* Member i gives back a slot claimed and not used (the accept found
 * nothing): a member waiting for one is woken. */
void http_group_unclaim(struct http_group *g, int i);
/* A connection placed at member i has ended: its slot and its count. With
 * local set the caller runs on member i's loop and can act on a wake for it
 * there: 1 when member i was waiting and takes the slot's wake itself (no
 * wake sent; it must then accept at once, as on a wake); else 0. */
int http_group_release(struct http_group *g, int i, int local);

/* Places connection fd (its slot claimed) accepted by member self: returns
 * self (fd is the caller's to serve) or the member it was handed to
 * (queued for it, its loop woken; fd no longer the caller's). Either way
 * the member's count includes it. */
int http_group_place(struct http_group *g, int self, int fd);
/* The sockets handed to member i since its last take (*fds, the caller's
 * to free; NULL when none). */
size_t http_group_take(struct http_group *g, int i, int **fds);

/* Connections member i serves or has waiting for it (for tests and logs). */
uint64_t http_group_count(const struct http_group *g, int i);

#endif
