/* placeholder */ typedef int simuboost_placeholder_t;
