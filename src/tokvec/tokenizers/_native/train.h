/* The BPE trainer (train.c). */
#ifndef TOKVEC_TRAIN_H
#define TOKVEC_TRAIN_H
#endif
