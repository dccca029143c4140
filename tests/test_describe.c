/* Printing an intervenable config shows pyvene's fields (IntervenableConfig.__repr__). */
#include <cjson/cJSON.h>

#include "test.h"
#include "vene.h"

int main(void) {
    vene_error err = {0};
    vene_model *m = NULL;
    vene_intervenable *iv = NULL;
    CHECK(vene_model_load("fixtures/models/gpt2-tiny", NULL, &m, &err) == VENE_OK);
    CHECK(vene_intervenable_new(m,
                                "{\"representations\": [{\"layer\": 2, \"component\": \"block_output\", "
                                "\"intervention_type\": \"VanillaIntervention\"}, {\"layer\": 0, \"component\": "
                                "\"mlp_output\", \"low_rank_dimension\": 2, \"intervention_type\": "
                                "\"LowRankRotatedSpaceIntervention\"}], \"mode\": \"parallel\"}",
                                &iv, &err) == VENE_OK);
    char *text = iv ? vene_intervenable_describe(iv) : NULL;
    CHECK(text && !strncmp(text, "IntervenableConfig\n", 19));
    cJSON *j = text ? cJSON_Parse(text + 19) : NULL;
    CHECK(j != NULL);
    const char *keys[] = {"model_type", "representations", "intervention_types", "mode", "sorted_keys",
                          "intervention_dimensions"};
    for (int i = 0; i < 6; i++) CHECK_MSG(cJSON_GetObjectItemCaseSensitive(j, keys[i]) != NULL, "missing %s", keys[i]);
    const cJSON *r1 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "representations"), 1);
    CHECK(cJSON_GetObjectItemCaseSensitive(r1, "low_rank_dimension")->valuedouble == 2);
    CHECK(!strcmp(cJSON_GetObjectItemCaseSensitive(r1, "component")->valuestring, "mlp_output"));
    const cJSON *k0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "sorted_keys"), 0);
    CHECK(k0 && !strcmp(k0->valuestring, "layer_2_comp_block_output_unit_pos_nunit_1#0"));
    const cJSON *types = cJSON_GetObjectItemCaseSensitive(j, "intervention_types");
    CHECK(cJSON_IsString(types) && strstr(types->valuestring, "LowRankRotatedSpaceIntervention"));
    if (text) printf("%s\n", text);
    cJSON_Delete(j);
    vene_free(text);
    vene_intervenable_free(iv);
    vene_model_free(m);
    TEST_MAIN_END();
}
