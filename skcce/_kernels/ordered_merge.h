/* Ordered merge of the dense kernel's group results through a few slots.
 *
 * The dense kernel sums each group of rows into its own gradient buffer and
 * adds the groups to the total in group order, whichever thread computed
 * them: that is what makes the result the same for every thread count. The
 * groups' buffers need not all exist at once: group g writes to slot
 * g % n_slots, and the total takes each group as soon as all groups before it
 * are in. A thread that takes group g first waits until group g - n_slots has
 * been merged (its slot is free). Threads take groups from one shared counter
 * (skcce_next_group), so groups start in increasing order, the oldest unmerged
 * group never waits for a slot, and every wait ends. (OpenMP's
 * schedule(dynamic) does not promise that order: since OpenMP 5.0 it is
 * nonmonotonic, and LLVM's libomp gives each thread a contiguous range to
 * start with, so a thread starting halfway would wait for most of the others'
 * groups.)
 *
 * The additions are those of a merge after all groups: total + g0 + g1 + ...
 * entry by entry in group order, so the bits are the same.
 */
#ifndef SKCCE_ORDERED_MERGE_H
#define SKCCE_ORDERED_MERGE_H

#include <stddef.h>

#if defined(__unix__) || defined(__APPLE__)
#include <sched.h>
#define SKCCE_YIELD() sched_yield()
#else
#define SKCCE_YIELD() ((void)0)
#endif

typedef struct {
    ptrdiff_t n_groups;
    ptrdiff_t n_slots;
    ptrdiff_t merged;          /* groups [0, merged) are in the total */
    ptrdiff_t next;            /* the next group a thread takes */
    unsigned char* done;       /* done[g]: group g computed, waiting in its slot */
} skcce_ordered_merge;

/* The next group to compute (n_groups or more: none is left). */
static inline ptrdiff_t skcce_next_group(skcce_ordered_merge* m)
{
#if defined(__GNUC__) || defined(__clang__)
    return __atomic_fetch_add(&m->next, 1, __ATOMIC_RELAXED);
#else
    ptrdiff_t g;
    #pragma omp critical(skcce_next_group)
    g = m->next++;
    return g;
#endif
}

static inline ptrdiff_t skcce_merged_groups(skcce_ordered_merge* m)
{
#if defined(__GNUC__) || defined(__clang__)
    return __atomic_load_n(&m->merged, __ATOMIC_ACQUIRE);
#else
    ptrdiff_t merged;
    #pragma omp atomic read
    merged = m->merged;
    #pragma omp flush
    return merged;
#endif
}

static inline void skcce_set_merged_groups(skcce_ordered_merge* m, ptrdiff_t merged)
{
#if defined(__GNUC__) || defined(__clang__)
    __atomic_store_n(&m->merged, merged, __ATOMIC_RELEASE);
#else
    #pragma omp flush
    #pragma omp atomic write
    m->merged = merged;
#endif
}

/* Block until group g may write to its slot. */
static inline void skcce_wait_for_slot(skcce_ordered_merge* m, ptrdiff_t g)
{
    while (skcce_merged_groups(m) <= g - m->n_slots)
        SKCCE_YIELD();
}

/* Record group g as computed, then add to the totals, in group order, every
 * computed group whose predecessors are all in. Slots: gradient rows of
 * ``ldw`` doubles (the first K used), K intercept sums (if grad_intercept is
 * not NULL) and one loss per slot. */
static void skcce_finish_group(skcce_ordered_merge* m, ptrdiff_t g,
                               double* grad, double* grad_intercept, double* loss,
                               const double* grad_slots, const double* intercept_slots,
                               const double* loss_slots, ptrdiff_t n_features,
                               ptrdiff_t n_classes, ptrdiff_t ldw)
{
    #pragma omp critical(skcce_ordered_merge)
    {
        ptrdiff_t h = m->merged;
        m->done[g] = 1;
        while (h < m->n_groups && m->done[h]) {
            const ptrdiff_t s = h % m->n_slots;
            const double* src = grad_slots + s * n_features * ldw;
            for (ptrdiff_t j = 0; j < n_features; j++)
                for (ptrdiff_t k = 0; k < n_classes; k++)
                    grad[j * n_classes + k] += src[j * ldw + k];
            if (grad_intercept != NULL)
                for (ptrdiff_t k = 0; k < n_classes; k++)
                    grad_intercept[k] += intercept_slots[s * n_classes + k];
            *loss += loss_slots[s];
            h++;
            skcce_set_merged_groups(m, h);
        }
    }
}

#endif
