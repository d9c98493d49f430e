/*
 * Sluice's stated bounds, model-checked with spin: scripts/model-check runs it.
 *
 * One key under one GCRA policy (emission interval I ticks, burst B), N Sluice replicas, and a
 * Redis master with one asynchronously replicated copy, in discrete time (ticks 0..MAXT). Each tick
 * first lets faults happen, then lets every replica make at most one request, in any order:
 *
 *  - Redis decides as gcra.lua: with tat = max(stored, floor, now), admitted when
 *    tat + I - B*I <= now, and the TAT becomes tat + I; a floor above the stored TAT is written
 *    even when the request is refused. FLOOR 0 sends no floor (the release before floors).
 *  - The copy may catch up with the master at any tick; a failover (at most MAXF) promotes the
 *    copy: every write since it last caught up is lost.
 *  - A replica learns a floor from each reply it gets (the reply's TAT). With REPLY_LOSS a reply
 *    may be lost: the charge stays, the replica learns nothing.
 *  - With DEGRADE, a replica may lose Redis at any tick (one episode each: a partition of it, or
 *    an outage of all) and then decides alone with its own GCRA at interval I*N and burst
 *    LB = max(1, B/N); when Redis answers again it charges back its debt (gcra_charge.lua: the
 *    local admissions elapsed time has not paid for, never beyond one full bucket).
 *
 * Checked after every tick, for every window [s, now] (adm[t]: admissions at tick t):
 *
 *   sum adm[s..now] <= B + (now - s) / I                                  (exact)
 *                    + B per failover in the window                      (lost writes: SLACK_FAILOVER)
 *                    + per replica degraded in the window: LB + its overlap / (I*N)
 *
 * SLACK_FAILOVER 0 asks for no excess at all across failovers: it holds with FLOOR 1 when every
 * reply arrives and one replica serves the key (scripts/model-check: "failover, floors"), and
 * fails without floors (the counterexample: a failover loses the last admission, and a request
 * is admitted into its place).
 */

#ifndef N
#define N 2
#endif
#ifndef B
#define B 2
#endif
#ifndef I
#define I 2
#endif
#ifndef MAXT
#define MAXT 8
#endif
#ifndef MAXF
#define MAXF 1
#endif
#ifndef FLOOR
#define FLOOR 1
#endif
#ifndef SLACK_FAILOVER
#define SLACK_FAILOVER B
#endif
#ifndef DEGRADE
#define DEGRADE 1
#endif
#ifndef REPLY_LOSS
#define REPLY_LOSS 1
#endif
#ifndef LOCAL_SLACK
#define LOCAL_SLACK 1
#endif
#define LB (B / N > 0 -> B / N : 1)

byte now = 0;
byte master = 0;         /* the master's stored TAT */
byte copy = 0;           /* its replica's */
byte failovers = 0;
byte failover_at[MAXF + 1];
byte floor_[N];
bool degraded[N];
byte local_tat[N];
byte deg_start[N];       /* a replica's one degraded episode: start, end (255: not over) */
byte deg_end[N];
bool episode[N];
bool called[N];
byte adm[MAXT + 1];      /* admissions per tick */

/* Every window [s, now] holds the bound, in units of 1/(I*N) request. */
inline check() {
    s = 0;
    do
    :: s <= now ->
        sum = 0; t = s;
        do :: t <= now -> sum = sum + adm[t]; t++ :: t > now -> break od;
        total = 0; k = 0;
        do
        :: k < failovers -> if :: failover_at[k] >= s -> total = total + SLACK_FAILOVER * I * N :: else fi; k++
        :: k >= failovers -> break
        od;
        k = 0;
        do
        :: k < N ->
            if
            :: episode[k] && (deg_end[k] == 255 || deg_end[k] >= s) ->
                lo = (deg_start[k] > s -> deg_start[k] : s);
                hi = (deg_end[k] == 255 -> now : deg_end[k]);
                total = total + LOCAL_SLACK * (LB * I * N + (hi - lo))
            :: else
            fi;
            k++
        :: k >= N -> break
        od;
        assert(sum * I * N <= B * I * N + (now - s) * N + total);
        s++
    :: s > now -> break
    od;
    s = 0; t = 0; k = 0; sum = 0; total = 0; lo = 0; hi = 0
}

/* Replica r asks Redis (one gcra.lua call). */
inline ask(r) {
    tat = master;
    if :: FLOOR && floor_[r] > tat -> tat = floor_[r]; master = tat :: else fi;
    if :: tat < now -> tat = now :: else fi;
    if
    :: tat + I <= now + B * I ->
        master = tat + I; adm[now]++;
        if :: floor_[r] = master :: REPLY_LOSS -> skip fi
    :: else ->
        if :: floor_[r] = tat :: REPLY_LOSS -> skip fi
    fi;
    tat = 0
}

/* Replica r decides alone (degraded mode). */
inline decide_locally(r) {
    tat = (local_tat[r] < now -> now : local_tat[r]);
    if :: tat + I * N <= now + LB * I * N -> local_tat[r] = tat + I * N; adm[now]++ :: else fi;
    tat = 0
}

/* Redis answers replica r again: its debt is charged back, never beyond one full bucket. */
inline recover(r) {
    debt = 0;
    if :: local_tat[r] > now -> debt = (local_tat[r] - now + I * N - 1) / (I * N) :: else fi;
    if
    :: debt > 0 ->
        tat = (master < now -> now : master) + debt * I;
        if :: tat > now + B * I -> tat = now + B * I :: else fi;
        if :: tat > master -> master = tat :: else fi
    :: else
    fi;
    degraded[r] = false; deg_end[r] = now; local_tat[r] = 0; debt = 0; tat = 0
}

active proctype World() {
    byte r, s, t, k, lo, hi, tat, debt;
    short sum, total;
    r = 0;
    do :: r < N -> deg_end[r] = 255; r++ :: r >= N -> break od;
    r = 0;
    do
    :: now <= MAXT ->
        /* faults, at the start of the tick */
        atomic {
            if :: copy = master :: skip fi;
            if :: failovers < MAXF -> master = copy; failover_at[failovers] = now; failovers++ :: skip fi;
            r = 0;
            do
            :: r < N ->
                if
                :: DEGRADE && !episode[r] -> degraded[r] = true; episode[r] = true; deg_start[r] = now
                :: DEGRADE && degraded[r] -> recover(r)
                :: skip
                fi;
                r++
            :: r >= N -> break
            od;
            r = 0
        }
        /* requests: each replica at most once, in any order */
        do
        :: atomic {
               select(r : 0 .. N - 1);
               if
               :: !called[r] -> called[r] = true; if :: degraded[r] -> decide_locally(r) :: else -> ask(r) fi
               :: else
               fi;
               r = 0
           }
        :: break
        od;
        atomic {
            check();
            r = 0; do :: r < N -> called[r] = false; r++ :: r >= N -> break od; r = 0;
            now++
        }
    :: now > MAXT -> break
    od
}
