/* A simulation node in a distributed run: joins a coordinator, takes the
 * run's settings, and replays each interval it is assigned here, with the
 * same driver as `simuboost replay` (replay.c), answering with the
 * interval's result. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distributor.h"
#include "simnode.h"

#define MAX_SPECS 16
/* Between assignments a coordinator sends something at least this often
 * (an interval that runs longer on another node delays nothing here). */
#define SILENCE_MS (24 * 3600 * 1000)

/* The run's settings, as the coordinator's WELCOME carries them. */
static int settings(json_t *doc, struct simnode_replay_options *o, const char **specs,
		    char *err, size_t errlen)
{
	json_t *v;
	size_t i;
	*o = (struct simnode_replay_options){ .jobs = 1, .timeout_s = 3600 };
	o->recording = json_string_value(json_object_get(doc, "recording"));
	if (!o->recording) {
		snprintf(err, errlen, "the coordinator's settings name no recording");
		return -1;
	}
	o->trace_dir = json_string_value(json_object_get(doc, "trace_dir"));
	o->analysis_dir = json_string_value(json_object_get(doc, "analysis_dir"));
	o->qemu = json_string_value(json_object_get(doc, "qemu"));
	o->budget = (uint64_t)json_integer_value(json_object_get(doc, "budget"));
	if (json_is_number(json_object_get(doc, "timeout_s")))
		o->timeout_s = json_number_value(json_object_get(doc, "timeout_s"));
	json_array_foreach(json_object_get(doc, "analyses"), i, v) {
		if (i == MAX_SPECS || !json_is_string(v)) {
			snprintf(err, errlen, "bad analyses in the coordinator's settings");
			return -1;
		}
		specs[o->nanalyses++] = json_string_value(v);
	}
	o->analyses = specs;
	return 0;
}

int simnode__serve(const char *endpoint, const struct wire_key *key, uint32_t id, char *err,
		   size_t errlen)
{
	struct simnode_replay_options o;
	const char *specs[MAX_SPECS];
	json_t *doc = NULL;
	struct wire_msg m;
	int rc = -1;

	struct link *l = link__connect(endpoint, key, id, err, errlen);
	if (!l)
		return -1;
	if (link__send(l, 0, WIRE_HELLO, NULL, 0, err, errlen) != 0)
		goto out;
	for (;;) {
		int got = link__recv(l, &m, SILENCE_MS, err, errlen);
		if (got < 0)
			goto out;
		if (got == 0) {
			snprintf(err, errlen, "%s: the coordinator has been silent for %d s", endpoint,
				 SILENCE_MS / 1000);
			goto out;
		}
		if (m.type == WIRE_BYE)
			break;
		if (m.type == WIRE_WELCOME) {
			json_decref(doc);
			doc = json_loadb((const char *)m.payload, m.len, 0, NULL);
			if (!doc || settings(doc, &o, specs, err, errlen) != 0) {
				if (!doc)
					snprintf(err, errlen, "the coordinator's settings are not JSON");
				goto out;
			}
			continue;
		}
		struct wire_reader r = wire_reader__of(&m);
		uint32_t k;
		if (m.type != WIRE_ASSIGN || !doc || !wire_reader__u32(&r, &k) ||
		    !wire_reader__done(&r))
			continue; /* nothing a node acts on */
		char rerr[1024];
		o.first = k;
		o.last = k + 1;
		json_t *res = simnode__replay(&o, rerr, sizeof(rerr));
		json_t *one = res ? json_incref(json_array_get(res, 0)) :
				    json_pack("{s:i, s:s, s:s}", "interval", k, "verdict", "error",
					      "detail", rerr);
		json_decref(res);
		json_object_set_new(one, "node", json_integer(id));
		const char *verdict = json_string_value(json_object_get(one, "verdict"));
		/* an error is the node's failure, to be retried elsewhere; a
		 * divergence is a result */
		uint8_t ran = verdict && strcmp(verdict, "error") ? 1 : 0;
		char *text = json_dumps(one, JSON_COMPACT);
		json_decref(one);
		struct wire_writer w = { .ok = true };
		wire_writer__u32(&w, k);
		wire_writer__u8(&w, ran);
		wire_writer__blob(&w, text, text ? (uint32_t)strlen(text) : 0);
		free(text);
		int sent = w.ok ? link__send(l, 0, WIRE_RESULT, w.buf, w.len, err, errlen) : -1;
		wire_writer__free(&w);
		if (sent != 0)
			goto out;
	}
	rc = 0;
out:
	json_decref(doc);
	link__close(l);
	return rc;
}
