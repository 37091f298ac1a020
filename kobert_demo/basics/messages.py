"""The one message catalogue: every sentence a user sees, engine and web app, as key -> (English, Korean).

The web app's static labels (gr.I18n) and its messages come from here too (`ui/i18n.py` only picks the language).
Stored reasons (a run's status, a dropped row, a job's end) are keys plus parameters, rendered when shown.
The tutorial-format log lines (`train.log`, the CLI's progress) stay English on purpose: they match the tutorial's
output byte for byte so its readers can compare runs.

Errors (see `errors.UserFacingError`) keep a key and parameters; `str(error)` is the English sentence, and the
web app shows `error.text("ko")` to Korean visitors. Templates use str.format fields; both languages of a key
use the same fields. File names, column names, numbers, env vars and CLI flags stay as they are in Korean.
No Gradio, no torch: the CLI imports this.
"""

from __future__ import annotations

from typing import Any

MESSAGES: dict[str, tuple[str, str]] = {
    # training settings (config.py)
    # bounds come from each field's Setting (config.py): {minimum}, {maximum}, {choices}
    "config_epochs": ("epochs must be at least {minimum}", "에폭 수는 {minimum} 이상이어야 합니다"),
    "config_batch_size": ("batch size must be at least {minimum}", "배치 크기는 {minimum} 이상이어야 합니다"),
    "config_max_len": (
        "max length must be between {minimum} and {maximum}",
        "최대 길이는 {minimum}에서 {maximum} 사이여야 합니다",
    ),
    "config_lr": ("learning rate must be positive", "학습률은 0보다 커야 합니다"),
    "config_warmup": (
        "warmup ratio must be between {minimum} and {maximum}",
        "워밍업 비율은 {minimum} 이상 {maximum} 미만이어야 합니다",
    ),
    "config_weight_decay": ("weight decay must not be negative", "가중치 감쇠는 음수일 수 없습니다"),
    "config_dropout": (
        "dropout must be between {minimum} and {maximum}",
        "드롭아웃은 {minimum} 이상 {maximum} 미만이어야 합니다",
    ),
    "config_max_grad_norm": ("max grad norm must be positive", "그래디언트 클리핑 값은 0보다 커야 합니다"),
    "config_log_interval": ("log interval must be at least {minimum}", "로그 간격은 {minimum} 이상이어야 합니다"),
    "config_test_size": (
        "test size must be between {minimum} and {maximum}",
        "테스트 비율은 {minimum}보다 크고 {maximum}보다 작아야 합니다",
    ),
    "config_precision": ("precision must be one of {choices}", "정밀도는 {choices} 중 하나여야 합니다"),
    "config_tokenizer_mode": (
        "tokenizer mode must be one of {choices}",
        "토크나이저 모드는 {choices} 중 하나여야 합니다",
    ),
    "config_epochs_max": ("epochs must be at most {maximum}", "에폭 수는 {maximum} 이하여야 합니다"),
    "config_batch_size_max": ("batch size must be at most {maximum}", "배치 크기는 {maximum} 이하여야 합니다"),
    "config_total_steps": (
        "{rows:,} rows in batches of {batch_size} for {epochs} epochs make {steps:,} training steps, over the limit "
        "of {limit:,}: use fewer epochs or a bigger batch size.",
        "{rows:,}행을 배치 크기 {batch_size}로 {epochs}에폭 학습하면 {steps:,}스텝으로 한도 {limit:,}스텝을 넘습니다: "
        "에폭 수를 줄이거나 배치 크기를 키우세요.",
    ),
    # ---- settings ----
    # Each TrainConfig field's help (config.py's Setting): the CLI's --help in English, the form's info lines.
    # No format fields: the form's static labels go to the browser as they are.
    "help_model": (
        "A curated backbone (kobert-demo models lists them), another hub id or local folder of a BERT, RoBERTa or "
        "ELECTRA model, or tiny: a small randomly initialised BERT that trains offline.",
        "선별된 백본(kobert-demo models 로 목록 확인), BERT·RoBERTa·ELECTRA 모델의 다른 허브 id나 로컬 폴더, 또는 "
        "tiny(오프라인으로 학습하는 작은 무작위 초기화 BERT).",
    ),
    "help_text_col": ("The column of sentences (default: detected).", "문장이 든 열 (기본값: 자동 감지)."),
    "help_label_col": ("The column of classes (default: detected).", "클래스가 든 열 (기본값: 자동 감지)."),
    "help_epochs": ("Passes over the training data.", "학습 데이터를 몇 번 반복해 학습할지 정합니다."),
    "help_batch_size": ("Sentences per training step.", "학습 한 스텝에 쓰는 문장 수입니다."),
    "help_max_len": (
        "Tokens per sentence, [CLS] and [SEP] included; longer sentences are cut.",
        "[CLS]와 [SEP]를 포함한 문장당 토큰 수입니다. 더 긴 문장은 잘립니다.",
    ),
    "help_lr": (
        "AdamW's learning rate; each backbone has its own default.",
        "AdamW의 학습률입니다. 백본마다 기본값이 다릅니다.",
    ),
    "help_warmup_ratio": (
        "The share of the steps over which the learning rate rises from 0.",
        "학습률이 0에서 올라가는 구간이 전체 스텝에서 차지하는 비율입니다.",
    ),
    "help_weight_decay": (
        "AdamW's weight decay, not applied to biases and LayerNorm weights.",
        "AdamW의 가중치 감쇠입니다. 편향과 LayerNorm 가중치에는 적용하지 않습니다.",
    ),
    "help_dropout": (
        "Dropout before the classification layer.",
        "분류 층 앞의 드롭아웃입니다.",
    ),
    "help_max_grad_norm": (
        "Gradients are clipped to this norm at every step.",
        "스텝마다 그래디언트를 이 노름으로 자릅니다.",
    ),
    "help_log_interval": (
        "A log line every this many batches.",
        "이 배치 수마다 로그를 한 줄 씁니다.",
    ),
    "help_seed": (
        "Seeds the test split, the initialisation and the batch order: the same seed, the same run.",
        "테스트 분할, 초기화, 배치 순서를 정합니다. 시드가 같으면 같은 결과가 나옵니다.",
    ),
    "help_precision": (
        "auto: bf16 where the GPU or CPU has it, fp16 on older GPUs, else fp32.",
        "auto: GPU나 CPU가 지원하면 bf16, 오래된 GPU에서는 fp16, 그 밖에는 fp32.",
    ),
    "help_tokenizer_mode": (
        "gluonnlp: KoBERT's original splitting (punctuation apart, then SentencePiece); whole: SentencePiece on the "
        "whole sentence.",
        "gluonnlp: KoBERT 원래 방식(문장부호를 떼어 낸 뒤 SentencePiece), whole: 문장 전체에 SentencePiece.",
    ),
    "help_test_size": (
        "The share of the training data held out for testing when there is no test file.",
        "테스트 파일이 없을 때 평가용으로 떼어 두는 학습 데이터의 비율입니다.",
    ),
    "config_seed": ("seed must be between {minimum} and {maximum}", "시드는 {minimum}에서 {maximum} 사이여야 합니다"),
    # validation, the kept model, early stopping, class weights, continuing a run (#25)
    "help_validation_size": (
        "The share of the training data held out for validation when there is no validation file: the validation "
        "data chooses the kept model; the test data never does.",
        "검증 파일이 없을 때 검증용으로 떼어 두는 학습 데이터의 비율입니다. 남길 모델은 검증 데이터로 고르며, 테스트 "
        "데이터로는 고르지 않습니다.",
    ),
    "config_validation_size": (
        "validation size must be above {minimum} and at most {maximum}",
        "검증 비율은 {minimum}보다 크고 {maximum} 이하여야 합니다",
    ),
    "help_eval_steps": (
        "Also evaluate on the validation data every this many steps (0: only at the end of each epoch).",
        "이 스텝 수마다 검증 데이터로도 평가합니다 (0: 에폭이 끝날 때만).",
    ),
    "config_eval_steps": ("eval steps must be at least {minimum}", "평가 간격은 {minimum} 이상이어야 합니다"),
    "help_best_metric": (
        "The validation metric that chooses the kept model: accuracy (as the tutorial) or macro_f1.",
        "남길 모델을 고르는 검증 지표: accuracy(튜토리얼과 같음) 또는 macro_f1.",
    ),
    "config_best_metric": ("the metric must be one of: {choices}", "지표는 다음 중 하나여야 합니다: {choices}"),
    "help_early_stopping_patience": (
        "Stop after this many evaluations without improvement on the validation data (0: off).",
        "검증 성능이 이 횟수만큼 연속으로 나아지지 않으면 학습을 멈춥니다 (0: 사용 안 함).",
    ),
    "config_early_stopping_patience": (
        "early stopping patience must be between {minimum} and {maximum}",
        "조기 종료 인내 횟수는 {minimum}에서 {maximum} 사이여야 합니다",
    ),
    "help_early_stopping_min_delta": (
        "The smallest rise of the validation metric that counts as an improvement.",
        "개선으로 인정하는 검증 지표의 최소 상승 폭입니다.",
    ),
    "config_early_stopping_min_delta": (
        "the minimum improvement must be between {minimum} and {maximum}",
        "최소 개선 폭은 {minimum}에서 {maximum} 사이여야 합니다",
    ),
    "help_class_weights": (
        "balanced: weight each class's loss by the inverse of its frequency, for imbalanced data; none: as the "
        "tutorial.",
        "balanced: 클래스 빈도의 역수로 손실에 가중치를 줍니다(불균형 데이터용). none: 튜토리얼과 같음.",
    ),
    "config_class_weights": (
        "class weights must be one of: {choices}",
        "클래스 가중치는 다음 중 하나여야 합니다: {choices}",
    ),
    "notice_early_stopped": (
        "Stopped early: {metric} on the validation data did not improve for {patience} evaluation(s) in a row; the "
        "kept model is epoch {best_epoch}'s ({metric} {best_value:.4f}).",
        "조기 종료: 검증 데이터의 {metric} 이(가) {patience}번 연속 나아지지 않았습니다. 남긴 모델은 {best_epoch} "
        "에폭의 모델입니다 ({metric} {best_value:.4f}).",
    ),
    "notice_not_learned": (
        "The kept model may not have learned: it answers '{label}' for {share:.0%} of the validation rows, and its "
        "accuracy is {accuracy:.4f} where always answering the most frequent class scores {majority:.4f}. Try more "
        "epochs, more data, or a pretrained backbone.",
        "남긴 모델이 학습되지 않았을 수 있습니다: 검증 데이터의 {share:.0%}에 '{label}'(이)라고 답하며, "
        "정확도는 {accuracy:.4f}이며, 가장 많은 클래스만 답해도 {majority:.4f}입니다. 에폭이나 데이터를 "
        "늘리거나 사전학습 모델을 써 보세요.",
    ),
    "hint_class_weights": (
        "The largest class, '{largest}', has {ratio:.1f}x the rows of the smallest, '{smallest}': class weights "
        "'balanced' may help the model learn the smaller classes.",
        "가장 큰 클래스 '{largest}'의 행 수가 가장 작은 클래스 '{smallest}'의 {ratio:.1f}배입니다: 클래스 가중치를 "
        "'balanced'로 하면 작은 클래스를 더 잘 배울 수 있습니다.",
    ),
    "notice_resumed": (
        "Resumed from the checkpoint of epoch {epoch}, step {step}.",
        "{epoch} 에폭, {step} 스텝의 체크포인트에서 이어서 학습합니다.",
    ),
    "help_init_from": (
        "Continue training: start from this finished run's model (its classes must be the data's).",
        "이어서 학습: 끝난 이 실행의 모델에서 시작합니다 (클래스가 데이터와 같아야 합니다).",
    ),
    "config_not_a_boolean": (
        "Setting {name} must be true or false, not '{value}'.",
        "설정 {name} 은(는) true 또는 false여야 합니다 ('{value}').",
    ),
    "config_not_finite": (
        "Setting {name} must be a finite number, not '{value}'.",
        "설정 {name} 은(는) 유한한 숫자여야 합니다 ('{value}').",
    ),
    "config_not_whole": (
        "Setting {name} must be a whole number, not '{value}'.",
        "설정 {name} 은(는) 정수여야 합니다 ('{value}').",
    ),
    "cli_no_such_file": ("{path} does not exist.", "{path} 이(가) 없습니다."),
    "cli_interrupted": ("interrupted.", "중단되었습니다."),
    # ---- end of settings ----
    # training failures (train.py, app/queue.py)
    "loss_not_finite": (
        "the loss became {value}",
        "손실이 {value}이(가) 되었습니다",
    ),
    "loss_not_finite_at": (
        "the loss became {value} at epoch {epoch} batch {batch}: lower the learning rate or use fp32.",
        "에폭 {epoch} 배치 {batch}에서 손실이 {value}이(가) 되었습니다: 학습률을 낮추거나 fp32를 쓰세요.",
    ),
    "gpu_out_of_memory": (
        "the GPU ran out of memory: lower the batch size or the max length, or use CPU mode.",
        "GPU 메모리가 부족합니다: 배치 크기나 최대 길이를 줄이거나 CPU 모드를 쓰세요.",
    ),
    "disk_full_writing": (
        "the disk is full while writing {file}: free some space, or point KOBERT_DEMO_RUNS (or --out) "
        "at a bigger disk.",
        "{file}을(를) 쓰는 중 디스크가 가득 찼습니다: 공간을 비우거나 KOBERT_DEMO_RUNS(또는 --out)를 더 큰 디스크로 "
        "지정하세요.",
    ),
    "disk_full": (
        "the disk is full: free some space, or point KOBERT_DEMO_RUNS (or --out) at a bigger disk.",
        "디스크가 가득 찼습니다: 공간을 비우거나 KOBERT_DEMO_RUNS(또는 --out)를 더 큰 디스크로 지정하세요.",
    ),
    "os_error_writing": ("{reason} while writing {file}.", "{file}을(를) 쓰는 중 오류가 났습니다: {reason}."),
    "os_error": ("{reason}.", "파일 오류: {reason}."),
    "process_killed": (
        "the training process ended without finishing (it was killed, most likely for lack of memory)",
        "학습 프로세스가 끝나지 못하고 종료되었습니다(강제 종료됨, 메모리 부족일 가능성이 큽니다)",
    ),
    "process_exit": (
        "the training process ended without finishing (exit code {code})",
        "학습 프로세스가 끝나지 못하고 종료되었습니다(종료 코드 {code})",
    ),
    # --- the shared training queue (app/queue.py) ---------------------------------------------------------------------
    "job_visitor_busy": (
        "you already have {count} jobs queued or running, the most one visitor may have: wait for one to end or "
        "stop one.",
        "이미 대기 중이거나 실행 중인 작업이 {count}개로, 방문자 한 명의 최대치입니다: 하나가 끝나길 기다리거나 "
        "하나를 멈추세요.",
    ),
    "job_visitor_runs": (
        "you keep {count} runs, the most one visitor may keep: delete some to start another.",
        "보관 중인 실행이 {count}개로, 방문자 한 명의 최대치입니다: 몇 개를 지우고 새로 시작하세요.",
    ),
    "job_visitor_bytes": (
        "your runs and this upload would take {mb:,} MB, over the {limit:,} MB one visitor may keep: delete some "
        "runs first.",
        "내 실행과 이번 업로드를 합치면 {mb:,} MB로, 방문자 한 명의 한도 {limit:,} MB를 넘습니다: 먼저 실행을 "
        "지우세요.",
    ),
    "job_too_long": (
        "this job would take about {estimate} at the measured {speed:,.0f} sentences/s, over this server's limit of "
        "{limit} per job: use fewer rows or epochs.",
        "이 작업은 측정된 속도 초당 {speed:,.0f}문장으로 약 {estimate} 걸려, 이 서버의 작업당 한도 {limit}을(를) "
        "넘습니다: 행이나 에폭 수를 줄이세요.",
    ),
    "job_time_limit": (
        "stopped at this server's time limit of {limit} per job; the best model so far on the validation data, if "
        "any, is kept",
        "이 서버의 작업당 시간 한도 {limit}에 도달해 멈췄습니다. 평가를 마친 모델이 있으면 지금까지 검증 데이터에서 "
        "가장 좋았던 모델이 남아 있습니다",
    ),
    "job_server_gone": (
        "stopped because the server that started it stopped; start it again",
        "이 작업을 시작한 서버가 멈춰서 함께 멈췄습니다. 다시 시작하세요",
    ),
    "serving_model_changed": (
        "the model changed while it was being prepared (its run saved a new epoch): try again.",
        "모델을 준비하는 동안 모델이 바뀌었습니다(실행이 새 에폭을 저장했습니다): 다시 시도하세요.",
    ),
    "job_queue_full": (
        "the training queue is full ({count} jobs waiting): try again later.",
        "학습 대기열이 가득 찼습니다(대기 중인 작업 {count}개): 나중에 다시 시도하세요.",
    ),
    "job_address_busy": (
        "{count} jobs from your network are already waiting or running, the most one address may hold: wait for "
        "one to end.",
        "같은 네트워크 주소에서 보낸 작업이 이미 {count}개 대기 중이거나 실행 중으로, 주소 하나의 최대치입니다: "
        "하나가 끝나길 기다리세요.",
    ),
    "job_home_full": (
        "this server's space for runs is full ({mb:,} MB of {limit:,} MB held by runs that are waiting or "
        "running): try again later.",
        "이 서버의 실행 저장 공간이 가득 찼습니다(한도 {limit:,} MB 중 {mb:,} MB를 대기 중이거나 실행 중인 "
        "작업이 쓰고 있습니다): 나중에 다시 시도하세요.",
    ),
    "job_home_taken": (
        "another server is using this runs folder, so this one is read-only: runs can be watched and models used, "
        "but training, stopping and deleting wait until that server stops.",
        "다른 서버가 이 실행 폴더를 쓰고 있어 이 서버는 읽기 전용입니다: 실행을 보고 모델을 쓸 수는 있지만, "
        "학습·멈춤·삭제는 그 서버가 멈출 때까지 할 수 없습니다.",
    ),
    "job_unexpected": (
        "the training queue could not run this job ({kind}); the server log has the details",
        "학습 대기열이 이 작업을 실행하지 못했습니다({kind}). 서버 로그에 자세한 내용이 있습니다",
    ),
    "job_orphan_stopped": (
        "stopped when the server restarted: a job of the previous server was still training",
        "서버가 다시 시작될 때 이전 서버의 작업이 아직 학습 중이어서 멈췄습니다",
    ),
    # ---- events, run states and reasons (events.py, runs.py, app/queue.py, train.py, app/ui/logs_tab.py) ----
    "event_unknown_type": (
        "the run's log holds an event of unknown type '{kind}'",
        "실행 로그에 알 수 없는 종류('{kind}')의 이벤트가 있습니다",
    ),
    "event_missing_fields": (
        "the run's log holds a '{kind}' event without {fields}",
        "실행 로그의 '{kind}' 이벤트에 {fields} 항목이 없습니다",
    ),
    "train_unexpected": (
        "training failed unexpectedly ({kind}: {detail})",
        "학습 중 예상하지 못한 오류가 났습니다 ({kind}: {detail})",
    ),
    "train_failed_detail": ("{detail}", "학습하지 못했습니다: {detail}"),
    "reason_stopped_queued": ("stopped before it started", "시작하기 전에 중지되었습니다"),
    "reason_stopped_no_model": (
        "stopped before the first epoch ended; no model was kept",
        "첫 에폭이 끝나기 전에 중지되어 남은 모델이 없습니다",
    ),
    "reason_process_gone": (
        "the training process ended without finishing",
        "학습 프로세스가 끝나지 못하고 종료되었습니다",
    ),
    "reason_process_gone_kept": (
        "the training process ended without finishing; the best model so far on the validation data is kept",
        "학습 프로세스가 끝나지 못하고 종료되었습니다. 지금까지 검증 데이터에서 가장 좋았던 모델은 남아 있습니다",
    ),
    "run_label_accuracy": ("acc {accuracy:.3f}", "정확도 {accuracy:.3f}"),
    # --- data files (data.py, bulk.py, cli.py) ------------------------------------------------------------------
    "data_no_rows": (
        "{name} has a header but no data rows.",
        "{name} 에 머리글만 있고 데이터 행이 없습니다.",
    ),
    "data_too_many_rows": (
        "{name} has {rows:,} data rows, over the limit of {limit:,} (set KOBERT_DEMO_MAX_ROWS to change it).",
        "{name} 의 데이터 행이 {rows:,}개로 한도 {limit:,}개를 넘습니다 "
        "(한도는 KOBERT_DEMO_MAX_ROWS로 바꿀 수 있습니다).",
    ),
    "data_text_too_long": (
        "{name} line {line} has a text of {chars:,} characters in column '{column}', over the limit of {limit:,} "
        "(set KOBERT_DEMO_MAX_TEXT_CHARS to change it).",
        "{name} {line}행의 '{column}' 열 텍스트가 {chars:,}자로 한도 {limit:,}자를 넘습니다 "
        "(한도는 KOBERT_DEMO_MAX_TEXT_CHARS로 바꿀 수 있습니다).",
    ),
    "data_no_labeled_rows": (
        "{name} has no rows with both a text in column '{text_col}' and a label in column '{label_col}'.",
        "{name} 에는 '{text_col}' 열의 텍스트와 '{label_col}' 열의 라벨이 모두 있는 행이 없습니다.",
    ),
    "data_one_class": (
        "{name} has only one class ('{label}') in column '{label_col}'; classification needs at least two.",
        "{name} 의 '{label_col}' 열에는 클래스가 하나('{label}')뿐입니다. "
        "분류하려면 클래스가 두 개 이상 있어야 합니다.",
    ),
    "data_unknown_test_labels": (
        "{name} has labels the training file lacks: {labels}.",
        "{name} 에 학습 파일에 없는 라벨이 있습니다: {labels}.",
    ),
    "data_too_small_to_split": (
        "{name} is too small to hold out a stratified {share:g} test share for {classes} classes "
        "(smallest class '{smallest}' has {count} rows): add rows or give a test file.",
        "{name} 은(는) 너무 작아서 클래스 {classes}개에 대해 테스트 비율 {share:g}만큼 층화 추출할 수 없습니다 "
        "(가장 작은 클래스 '{smallest}' 는 {count}행): 행을 더 넣거나 테스트 파일을 주세요.",
    ),
    "data_unknown_valid_labels": (
        "{name} has labels the training file lacks: {labels}; the validation data may only hold the training classes.",
        "{name} 에 학습 파일에 없는 라벨이 있습니다: {labels}. 검증 데이터에는 학습 데이터의 클래스만 있어야 합니다.",
    ),
    "data_too_small_to_validate": (
        "{name} is too small to hold out a stratified {share:g} validation share for {classes} classes "
        "(class '{smallest}' has only {count} rows for training and validation): add rows or give a validation file.",
        "{name} 은(는) 너무 작아서 클래스 {classes}개에 대해 검증 비율 {share:g}만큼 층화 추출할 수 없습니다 "
        "(클래스 '{smallest}' 는 학습과 검증에 쓸 행이 {count}행뿐): 행을 더 넣거나 검증 파일을 주세요.",
    ),
    "data_no_column": (
        "{name} has no column '{column}'; its columns are {columns}.",
        "{name} 에 '{column}' 열이 없습니다. 있는 열: {columns}.",
    ),
    "data_no_text_column": (
        "{name} has no column that looks like text (columns: {columns}); name it explicitly.",
        "{name} 에 텍스트로 보이는 열이 없습니다 (열: {columns}). 텍스트 열을 직접 지정하세요.",
    ),
    "data_no_detected_column": (
        "{name} has no column that looks like the {role} column (columns: {columns}); "
        "choose them with the text/label column options.",
        "{name} 에 {role} 열로 보이는 열이 없습니다 (열: {columns}). 텍스트 열/라벨 열 옵션으로 고르세요.",
    ),
    "data_no_sentences": (
        "{name} has no sentences to classify.",
        "{name} 에 분류할 문장이 없습니다.",
    ),
    "data_too_many_sentences": (
        "{name} has {n:,} sentences, over the limit of {limit:,} (set KOBERT_DEMO_MAX_ROWS to change it).",
        "{name} 의 문장이 {n:,}개로 한도 {limit:,}개를 넘습니다 (한도는 KOBERT_DEMO_MAX_ROWS로 바꿀 수 있습니다).",
    ),
    "data_not_a_file": (
        "{path} does not exist or is not a file.",
        "{path} 이(가) 없거나 파일이 아닙니다.",
    ),
    "data_file_too_big": (
        "{name} is {size_mb:.1f} MB, over the {limit_mb} MB limit (set KOBERT_DEMO_MAX_FILE_MB to change it).",
        "{name} 은(는) {size_mb:.1f} MB로 한도 {limit_mb} MB를 넘습니다 "
        "(한도는 KOBERT_DEMO_MAX_FILE_MB로 바꿀 수 있습니다).",
    ),
    "data_empty": (
        "{name} is empty.",
        "{name} 이(가) 비어 있습니다.",
    ),
    "data_binary": (
        "{name} looks like {kind}, not a text table: save it as CSV (UTF-8) or TSV and use that file.",
        "{name} 은(는) 텍스트 표가 아니라 {kind} 같습니다. CSV(UTF-8)나 TSV로 저장한 파일을 쓰세요.",
    ),
    "data_bad_encoding": (
        "{name} is neither UTF-8 nor CP949/EUC-KR text; save it as UTF-8.",
        "{name} 은(는) UTF-8도 CP949/EUC-KR도 아닌 텍스트입니다. UTF-8로 저장하세요.",
    ),
    "data_no_separator": (
        "{name} has a single column (no tab, comma, ';' or '|' in its first line), "
        "but it needs a text column and a label column.",
        "{name} 에 열이 하나뿐입니다 (첫 줄에 탭, 쉼표, ';', '|' 가 없음). 텍스트 열과 라벨 열이 모두 있어야 합니다.",
    ),
    "data_ragged": (
        "{name} line {line} has {saw} fields but the header has {expected}: "
        "check for stray {separator} characters in that row.",
        "{name} {line}행의 필드는 {saw}개인데 머리글은 {expected}개입니다. "
        "그 행에 잘못 들어간 {separator} 문자가 있는지 확인하세요.",
    ),
    "data_open_quote": (
        "{name} has a double quote that is never closed, starting near line {line}: "
        "double the quotes inside a quoted field or remove the stray one.",
        "{name} 의 {line}행 근처에서 시작한 큰따옴표가 닫히지 않았습니다. "
        "따옴표로 묶은 필드 안의 따옴표는 두 번 쓰거나, 잘못 들어간 따옴표를 지우세요.",
    ),
    "data_unreadable": (
        "{name} could not be read as a table: {reason}",
        "{name} 을(를) 표로 읽을 수 없습니다: {reason}",
    ),
    "data_single_column": (
        "{name} has a single column, but it needs a text column and a label column.",
        "{name} 에 열이 하나뿐입니다. 텍스트 열과 라벨 열이 모두 있어야 합니다.",
    ),
    "data_same_columns": (
        "{name}: the text column and the label column must differ, not both be '{column}'.",
        "{name}: 텍스트 열과 라벨 열은 서로 달라야 합니다 (둘 다 '{column}' 입니다).",
    ),
    "data_out_exists": (
        "{out} exists; pass --resume to continue it, or choose another --out.",
        "{out} 이(가) 이미 있습니다. 이어서 하려면 --resume 을 주고, 아니면 다른 --out 을 고르세요.",
    ),
    "data_unknown_model_labels": (
        "{name} has labels the model was not trained on: {labels} (it knows {known}).",
        "{name} 에 모델이 학습하지 않은 라벨이 있습니다: {labels} (모델이 아는 라벨: {known}).",
    ),
    # --- backbones and trained models (engine/loading.py, checkpoints.py, memory.py) ----------------------------------
    "model_none_given": (
        "no model given: use {hub_id}, a model folder, or '{tiny}'.",
        "모델이 지정되지 않았습니다. {hub_id}, 모델 폴더, '{tiny}' 중 하나를 쓰세요.",
    ),
    "model_unknown_source": (
        "model '{source}' is neither a folder on this machine, a hub id such as {hub_id}, nor '{tiny}'.",
        "모델 '{source}' 은(는) 이 서버의 폴더도, {hub_id} 같은 허브 id도, '{tiny}' 도 아닙니다.",
    ),
    "model_hub_failed": (
        "could not get '{source}' from the Hugging Face hub ({kind}): check the network "
        "(or set HF_ENDPOINT to a mirror), download it once with `huggingface-cli download {source}` "
        "and pass that folder, or use --model {tiny} to work offline.",
        "Hugging Face 허브에서 '{source}' 을(를) 가져오지 못했습니다 ({kind}). 네트워크를 확인하거나 "
        "(HF_ENDPOINT로 미러를 지정할 수도 있습니다), `huggingface-cli download {source}` 로 한 번 내려받아 "
        "그 폴더를 지정하거나, 오프라인에서는 --model {tiny} 를 쓰세요.",
    ),
    "model_no_config": (
        "{folder} has no config.json, so it is not a model folder.",
        "{folder} 에 config.json이 없으므로 모델 폴더가 아닙니다.",
    ),
    "model_config_not_json": (
        "{path} is not valid JSON.",
        "{path} 은(는) 올바른 JSON이 아닙니다.",
    ),
    "model_config_not_object": (
        "{path} holds no JSON object, so it is not a model config.",
        "{path} 에 JSON 객체가 없으므로 모델 설정 파일이 아닙니다.",
    ),
    "model_not_supported": (
        "{path} describes a '{model_type}' model; KoBERT Demo trains these kinds: {types}.",
        "{path} 은(는) '{model_type}' 모델의 설정입니다. KoBERT 데모가 학습하는 종류는 {types} 입니다.",
    ),
    "model_no_tokenizer": (
        "{folder} has no tokenizer: neither KoBERT's SentencePiece model (*.model) nor the model's own "
        "tokenizer.json (or vocab.txt).",
        "{folder} 에 토크나이저가 없습니다. KoBERT의 SentencePiece 모델(*.model)도, 모델의 tokenizer.json(또는 "
        "vocab.txt)도 없습니다.",
    ),
    "model_fast_tokenizer_failed": (
        "cannot build the model's own tokenizer (tokenizer.json) from {folder}: {reason}",
        "{folder} 에서 모델의 토크나이저(tokenizer.json)를 만들 수 없습니다: {reason}",
    ),
    "model_tokenizer_pad": (
        "the tokenizer in {folder} pads with id {pad} but the model's config says pad_token_id {model_pad}: "
        "they do not belong together.",
        "{folder} 의 토크나이저는 패딩 id가 {pad}인데 모델 설정의 pad_token_id는 {model_pad}입니다. "
        "서로 짝이 맞지 않습니다.",
    ),
    "model_tokenizer_not_korean": (
        "the tokenizer in {folder} turns {share} of everyday Korean into its unknown token: it is not a Korean "
        "tokenizer, or not this model's.",
        "{folder} 의 토크나이저는 평범한 한국어 문장의 {share}를 알 수 없는 토큰으로 바꿉니다. 한국어 토크나이저가 "
        "아니거나 이 모델의 것이 아닙니다.",
    ),
    "model_bad_config": (
        "{path} is not a usable {family} config: {reason}",
        "{path} 은(는) 쓸 수 있는 {family} 설정이 아닙니다: {reason}",
    ),
    "model_config_out_of_range": (
        "{path} has {setting}={value!r}; expected a whole number from 1 to {high}.",
        "{path} 의 {setting}={value!r} 이(가) 잘못되었습니다. 1부터 {high}까지의 정수여야 합니다.",
    ),
    "model_too_many_classes": (
        "{path} names {classes:,} classes; a model may have at most {limit:,}.",
        "{path} 에 클래스가 {classes:,}개 있습니다. 모델의 클래스는 {limit:,}개까지만 허용됩니다.",
    ),
    "model_too_big": (
        "{name} would take about {need_mb:,} MB of memory ({params:,} parameters); this server allows {limit_mb:,} MB"
        " per model (KOBERT_DEMO_MAX_MODEL_MB).",
        "{name} 은(는) 메모리가 약 {need_mb:,} MB 필요합니다 (매개변수 {params:,}개). 이 서버는 모델 하나에"
        " {limit_mb:,} MB까지만 허용합니다 (KOBERT_DEMO_MAX_MODEL_MB).",
    ),
    "model_too_big_to_train": (
        "Training {name} at batch size {batch_size:,} and max_len {max_len:,} would take about {need_mb:,} MB of"
        " memory ({params:,} parameters); this server allows {limit_mb:,} MB for training"
        " (KOBERT_DEMO_MAX_TRAIN_MB). Choose a smaller batch size or max_len.",
        "{name} 을(를) 배치 크기 {batch_size:,}, max_len {max_len:,}(으)로 학습하려면 메모리가 약 {need_mb:,} MB"
        " 필요합니다 (매개변수 {params:,}개). 이 서버는 학습에 {limit_mb:,} MB까지만 허용합니다"
        " (KOBERT_DEMO_MAX_TRAIN_MB). 배치 크기나 max_len을 줄이세요.",
    ),
    "err_explain_too_big": (
        "Explaining a sentence of {tokens:,} tokens with this model would take about {need_mb:,} MB of memory; this"
        " server leaves {limit_mb:,} MB beside the model (KOBERT_DEMO_MAX_MODEL_MB). Try a shorter sentence.",
        "이 모델로 토큰 {tokens:,}개짜리 문장을 설명하려면 메모리가 약 {need_mb:,} MB 필요합니다. 이 서버는 모델 외에"
        " {limit_mb:,} MB만 허용합니다 (KOBERT_DEMO_MAX_MODEL_MB). 더 짧은 문장으로 해 보세요.",
    ),
    "model_heads": (
        "{path}: hidden_size must be a multiple of num_attention_heads.",
        "{path}: hidden_size는 num_attention_heads의 배수여야 합니다.",
    ),
    "model_tokenizer_failed": (
        "cannot build the KoBERT tokenizer from {folder}: {reason}",
        "{folder} 에서 KoBERT 토크나이저를 만들 수 없습니다: {reason}",
    ),
    "model_tokenizer_mismatch": (
        "the tokenizer in {folder} has {tokens} tokens but the model only {model_tokens}: they do not belong together.",
        "{folder} 의 토크나이저는 토큰이 {tokens}개인데 모델은 {model_tokens}개뿐입니다. 서로 짝이 맞지 않습니다.",
    ),
    "model_no_weights": (
        "{folder} has no weights (model.safetensors).",
        "{folder} 에 가중치 파일(model.safetensors)이 없습니다.",
    ),
    "model_no_weights_trusted": (
        "{folder} has no weights (model.safetensors or pytorch_model.bin).",
        "{folder} 에 가중치 파일(model.safetensors 또는 pytorch_model.bin)이 없습니다.",
    ),
    "model_tiny_needs_texts": (
        "the tiny backbone needs the training texts to learn its vocabulary from.",
        "tiny 백본은 어휘를 배울 학습 문장이 필요합니다.",
    ),
    "model_weights_failed": (
        "cannot load the weights in {folder}: {reason}",
        "{folder} 의 가중치를 불러올 수 없습니다: {reason}",
    ),
    "model_no_classes": (
        "{folder} is not a trained classifier: its config names no classes.",
        "{folder} 은(는) 학습된 분류 모델이 아닙니다: 설정에 클래스가 없습니다.",
    ),
    "model_no_head": (
        "{folder} is not a trained classifier: its weights have no classification head ({keys}).",
        "{folder} 은(는) 학습된 분류 모델이 아닙니다: 가중치에 분류 헤드({keys})가 없습니다.",
    ),
    "model_weights_missing": (
        "{name} lacks {count} weight(s) of the {family} encoder its config.json describes ({keys}); they would train "
        "from random values, so it is not loaded.",
        "{name} 에는 config.json이 설명하는 {family} 인코더의 가중치 {count}개가 없습니다({keys}). 무작위 값으로 "
        "학습하게 되므로 불러오지 않습니다.",
    ),
    "model_weights_missing_unplaced": (
        "{name} lacks {count} weight(s) of the {family} encoder its config.json describes ({keys}) and holds "
        "{unplaced_count} it cannot place ({unplaced}): the keys need {encoder}'s names, with or without a {prefix} "
        "prefix.",
        "{name} 에는 config.json이 설명하는 {family} 인코더의 가중치 {count}개가 없고({keys}), 자리를 찾을 수 없는 "
        "가중치 {unplaced_count}개가 있습니다({unplaced}). 키 이름은 {encoder}의 이름이어야 합니다({prefix} 접두사는 "
        "있어도 없어도 됩니다).",
    ),
    "model_weights_shape": (
        "{name}: {count} weight(s) do not have the shape its config.json implies ({keys}); {first} is {shape} where "
        "the config needs {expected}, so config.json and the weights do not belong together.",
        "{name}: 가중치 {count}개의 모양이 config.json과 맞지 않습니다({keys}). {first} 는 {shape} 인데 설정대로라면 "
        "{expected} 여야 하므로 config.json과 가중치가 서로 짝이 맞지 않습니다.",
    ),
    "model_weights_extra": (
        "{name} holds {count} encoder weight(s) its config.json does not describe ({keys}): config.json and the "
        "weights do not belong together (compare num_hidden_layers with the layers in the weights).",
        "{name} 에는 config.json이 설명하지 않는 인코더 가중치 {count}개가 있습니다({keys}). config.json과 가중치가 "
        "서로 짝이 맞지 않습니다(num_hidden_layers와 가중치의 층 수를 비교하세요).",
    ),
    # --- runs and exports (runs.py, export.py) -----------------------------------------------------------------
    "run_folder_taken": (
        "{path} already holds a run; choose another --out folder or delete that run.",
        "{path} 에 이미 실행이 있습니다. 다른 --out 폴더를 고르거나 그 실행을 지우세요.",
    ),
    "run_not_a_run": (
        "{path} is not a run folder (it has no status.json and config.json).",
        "{path} 은(는) 실행 폴더가 아닙니다 (status.json과 config.json이 없습니다).",
    ),
    "run_still_active": (
        "run {run} is still {state}; stop it first.",
        "실행 {run} 이(가) 아직 {state}입니다. 먼저 멈추세요.",
    ),
    # resuming a run and continuing from one (#25: runs.py, engine/resume.py, queue.py, cli.py)
    "run_not_resumable": (
        "run {run} cannot be resumed: it is {state}, and only an interrupted, stopped or failed run can be.",
        "실행 {run} 은(는) 이어서 학습할 수 없습니다: {state} 상태이며, 중단되었거나 중지되었거나 실패한 실행만 이어서 "
        "학습할 수 있습니다.",
    ),
    "run_no_checkpoint": (
        "run {run} cannot be resumed: it ended before its first validation evaluation, so it kept no checkpoint.",
        "실행 {run} 은(는) 이어서 학습할 수 없습니다: 첫 검증 평가 전에 끝나서 체크포인트가 없습니다.",
    ),
    "resume_no_data": (
        "run {run} cannot be resumed: its copy of the data is gone.",
        "실행 {run} 은(는) 이어서 학습할 수 없습니다: 데이터 사본이 없습니다.",
    ),
    "resume_needs_data": (
        "run {run} kept no copy of its data: give its training file again (and --test and --valid as it had them).",
        "실행 {run} 에 데이터 사본이 없습니다: 학습 파일을 다시 주세요 (--test, --valid 도 처음과 같이).",
    ),
    "resume_data_changed": (
        "run {run} cannot be resumed on this data: it is not the data the run was training on.",
        "실행 {run} 은(는) 이 데이터로 이어서 학습할 수 없습니다: 그 실행이 학습하던 데이터가 아닙니다.",
    ),
    "resume_checkpoint_damaged": (
        "the checkpoint cannot be read ({reason}); start the run again.",
        "체크포인트를 읽을 수 없습니다 ({reason}). 실행을 처음부터 다시 시작하세요.",
    ),
    "init_from_no_model": (
        "run {run} has no finished model to continue training from.",
        "실행 {run} 에는 이어서 학습할 완성된 모델이 없습니다.",
    ),
    "init_from_extra_classes": (
        "Continuing run {run} needs its classes, but the data has classes it was not trained on: {labels}.",
        "실행 {run} 을(를) 이어서 학습하려면 클래스가 같아야 하는데, 데이터에 그 실행이 학습하지 않은 클래스가 "
        "있습니다: {labels}.",
    ),
    "init_from_missing_classes": (
        "Continuing run {run} needs its classes, but the data lacks some of them: {labels}.",
        "실행 {run} 을(를) 이어서 학습하려면 클래스가 같아야 하는데, 데이터에 없는 클래스가 있습니다: {labels}.",
    ),
    "init_from_not_a_name": (
        "Continue training names one of your runs by its name, not '{value}'.",
        "이어서 학습할 실행은 경로가 아닌 실행 이름으로 고르세요 ('{value}' 가 아님).",
    ),
    "run_missing_file": (
        "run {run} has no {file}.",
        "실행 {run} 에 {file} 이(가) 없습니다.",
    ),
    "run_damaged_file": (
        "run {run} cannot be read: its {file} is damaged.",
        "실행 {run} 을(를) 읽을 수 없습니다: {file} 이(가) 손상되었습니다.",
    ),
    "run_no_model": (
        "run {run} has no model to export (no epoch completed).",
        "실행 {run} 에는 내보낼 모델이 없습니다 (완료된 에폭이 없음).",
    ),
    "run_model_changing": (
        "run {run} saved a new model three times while it was being exported; try again when it has finished.",
        "실행 {run} 이(가) 내보내는 동안 새 모델을 세 번 저장했습니다. 학습이 끝난 뒤 다시 시도하세요.",
    ),
    "export_out_not_empty": (
        "{out} exists and is not empty; choose another --out.",
        "{out} 이(가) 이미 있고 비어 있지 않습니다. 다른 --out 을 고르세요.",
    ),
    "export_onnx_diff": (
        "the ONNX export differs from PyTorch by {diff:.4f} in probability (limit 0.01); not kept.",
        "ONNX로 내보낸 모델의 확률이 PyTorch와 {diff:.4f} 만큼 달라 (한도 0.01) 저장하지 않았습니다.",
    ),
    # --- uploaded model zips (export.py) -----------------------------------------------------------------------
    "zip_empty": (
        "{name} is empty.",
        "{name} 이(가) 비어 있습니다.",
    ),
    "zip_too_many_files": (
        "{name} holds {files} files; a model zip holds at most {limit}.",
        "{name} 에 파일이 {files}개 있습니다. 모델 zip에는 파일을 {limit}개까지만 넣을 수 있습니다.",
    ),
    "zip_bomb": (
        "{name} would unpack to {unpacked_mb:.0f} MB from {packed_mb:.1f} MB; refused as a zip bomb.",
        "{name} 은(는) {packed_mb:.1f} MB에서 {unpacked_mb:.0f} MB로 풀리므로 zip 폭탄으로 보고 거부했습니다.",
    ),
    "zip_bomb_file": (
        "{name}: {file} would unpack to {unpacked_mb:.0f} MB from {packed_mb:.1f} MB; refused as a zip bomb.",
        "{name}: {file} 은(는) {packed_mb:.1f} MB에서 {unpacked_mb:.0f} MB로 풀리므로 zip 폭탄으로 보고 거부했습니다.",
    ),
    "zip_unsafe_path": (
        "{name} has an entry with an unsafe path ({entry}); refused.",
        "{name} 에 안전하지 않은 경로의 항목({entry})이 있어 거부했습니다.",
    ),
    "zip_symlink": (
        "{name} contains a symbolic link ({entry}); refused.",
        "{name} 에 심볼릭 링크({entry})가 있어 거부했습니다.",
    ),
    "zip_pickle": (
        "{name} contains {file}, a pickle file that could run code when loaded; only safetensors weights are accepted.",
        "{name} 에 불러올 때 코드를 실행할 수 있는 pickle 파일 {file} 이(가) 있습니다. "
        "가중치는 safetensors만 받습니다.",
    ),
    "zip_duplicate": (
        "{name} holds two files called {file}; keep one model per zip.",
        "{name} 에 {file} 파일이 두 개 있습니다. zip 하나에는 모델 하나만 넣으세요.",
    ),
    "zip_unreadable": (
        "{name} is not a readable zip file.",
        "{name} 은(는) 읽을 수 있는 zip 파일이 아닙니다.",
    ),
    "zip_not_model": (
        "{name} is not a model exported by KoBERT Demo (it needs config.json and model.safetensors).",
        "{name} 은(는) KoBERT 데모에서 내보낸 모델이 아닙니다 (config.json과 model.safetensors가 있어야 합니다).",
    ),
    "zip_damaged": (
        "{name} is damaged and could not be unpacked ({reason}).",
        "{name} 이(가) 손상되어 풀 수 없습니다 ({reason}).",
    ),
    "zip_bad_model": (
        "{name}: {error}",
        "{name}: {error}",
    ),
    # ---- the command line (cli.py) ----
    "cli_sentences_or_file": (
        "give either sentences or --file FILE (with --out CSV), not both or neither.",
        "문장들 또는 --file FILE(--out CSV와 함께) 중 하나만 주세요.",
    ),
    "cli_file_needs_out": (
        "--file needs --out CSV: where to write the probabilities.",
        "--file에는 확률을 쓸 곳인 --out CSV가 필요합니다.",
    ),
    "cli_model_or_spm": (
        "give --model (a folder, run or hub id) or --spm FILE [--vocab FILE], not both.",
        "--model(폴더, 실행 또는 허브 id)과 --spm FILE [--vocab FILE] 중 하나만 주세요.",
    ),
    # ---- the web app (ui/): labels, help, states and messages ----
    # header and tabs
    "title": ("# KoBERT Demo · Korean text classification", "# KoBERT 데모 · 한국어 문장 분류"),
    "intro": (
        "Fine-tune **KoBERT** (SKT Brain's Korean BERT) on your own labelled Korean sentences and use the classifier "
        "right away. Training runs in a server-side queue, one job at a time; you see and control only the runs "
        "started from this browser.",
        "라벨이 달린 한국어 문장으로 **KoBERT**(SKT Brain의 한국어 BERT)를 미세 조정하고, 바로 예측해 보세요. 학습은 "
        "서버의 작업 대기열에서 한 번에 하나씩 진행되며, 이 브라우저에서 시작한 실행만 보이고 제어할 수 있습니다.",
    ),
    "tab_train": ("Train", "학습"),
    "tab_logs": ("Logs", "로그"),
    "tab_predict": ("Predict", "예측"),
    "footer": (
        "API: see 'Use via API' below, or the gradio_client example in the README.",
        "API: 아래의 'API를 통해 사용' 또는 README의 gradio_client 예시를 참고하세요.",
    ),
    # train tab
    "train_file": ("Training data (.tsv / .csv / .txt)", "학습 데이터 (.tsv / .csv / .txt)"),
    "test_file": ("Test data (optional)", "테스트 데이터 (선택)"),
    "file_help": (
        "A table with a header row, UTF-8 or CP949 (Excel). The text and label columns are detected (NSMC's `id / "
        "document / label` works as is). Labels may be strings or numbers, any number of classes.",
        "머리글 행이 있는 표, UTF-8 또는 CP949(엑셀). 텍스트 열과 라벨 열은 자동으로 찾습니다 (NSMC의 `id / document "
        "/ label` 그대로 가능). 라벨은 문자열이든 숫자든, 클래스는 몇 개든 됩니다.",
    ),
    "limits": (
        "Limits: files up to {mb:,} MB · {rows:,} rows · {chars:,} characters per sentence · {lines:,} sentences per "
        "prediction",
        "한도: 파일 {mb:,} MB · {rows:,}행 · 문장당 {chars:,}자 · 예측은 한 번에 {lines:,}문장까지",
    ),
    "text_col": ("Text column", "텍스트 열"),
    "label_col": ("Label column", "라벨 열"),
    "preview": ("Preview (first rows)", "미리보기 (처음 몇 행)"),
    "classes_plot": ("Rows per class", "클래스별 행 수"),
    "file_line": (
        "**{name}** · {encoding} · {separator} · {read:,} rows read, {kept:,} used · dropped: {dropped}",
        "**{name}** · {encoding} · {separator} · {read:,}행 읽음, {kept:,}행 사용 · 제외: {dropped}",
    ),
    "classes_line": ("{n} classes", "클래스 {n}개"),
    "no_test_file": (
        "Without a test file, a stratified share of the training data (the test split) is held out.",
        "테스트 파일이 없으면 학습 데이터의 일부(테스트 비율)를 층화 추출해 평가에 씁니다.",
    ),
    "sep_tab": ("tab-separated", "탭 구분"),
    "sep_comma": ("comma-separated", "쉼표 구분"),
    "sep_semicolon": ("semicolon-separated", "세미콜론 구분"),
    "sep_pipe": ("|-separated", "| 구분"),
    "sep_other": ("other separator", "구분자 기타"),
    "none": ("none", "없음"),
    "drop_empty_text": ("empty text", "빈 텍스트"),
    "drop_empty_label": ("empty label", "빈 라벨"),
    "backbone_title": ("### Backbone", "### 백본 모델"),
    "backbone_kobert": ("KoBERT (skt/kobert-base-v1, hub)", "KoBERT (skt/kobert-base-v1, 허브)"),
    "backbone_custom": ("Local folder or hub id", "로컬 폴더 또는 허브 id"),
    "backbone_tiny": ("tiny (offline · not KoBERT)", "tiny (오프라인 · KoBERT 아님)"),
    "note_kobert": (
        "SKT Brain's KoBERT, downloaded once from the Hugging Face hub and cached. Slow on a CPU-only server (a GPU "
        "is recommended).",
        "SKT Brain의 KoBERT를 Hugging Face 허브에서 한 번 내려받아 캐시합니다. CPU만 있는 서버에서는 느립니다(GPU "
        "권장).",
    ),
    "note_tiny": (
        "**tiny is not KoBERT.** It is a small randomly initialised BERT whose vocabulary is learnt from your "
        "training sentences: no network, trains on a CPU in seconds to minutes. Its default learning rate is 1e-3.",
        "**tiny는 KoBERT가 아닙니다.** 학습 문장으로 어휘를 배우는 작은 무작위 초기화 BERT로, 네트워크 없이 CPU에서 "
        "몇 초~몇 분 만에 학습됩니다. 학습률 기본값은 1e-3입니다.",
    ),
    "note_custom": (
        "A BERT, RoBERTa or ELECTRA model: a hub id, or a local folder with config.json, its weights and its "
        "tokenizer (tokenizer.json or vocab.txt; KoBERT's SentencePiece *.model for KoBERT-like folders).",
        "BERT, RoBERTa, ELECTRA 모델: 허브 id, 또는 config.json, 가중치, 토크나이저(tokenizer.json 또는 vocab.txt, "
        "KoBERT 형태 폴더는 SentencePiece *.model)가 있는 로컬 폴더.",
    ),
    "epochs": ("Epochs", "에폭"),
    "batch_size": ("Batch size", "배치 크기"),
    "max_len": ("Max length (tokens)", "최대 길이 (토큰)"),
    "lr": ("Learning rate", "학습률"),
    "cpu_mode": ("CPU mode: train only the top 2 layers", "CPU 모드: 위쪽 2개 층만 학습"),
    "cpu_mode_help": (
        "Recommended without a GPU. The lower layers are frozen and run without backpropagation: about 3x faster than "
        "full fine-tuning at KoBERT's size. Accuracy cost measured on NSMC with a small pretrained model: -1.0 point "
        "(0.824 -> 0.815); see the README's speed section.",
        "GPU가 없을 때 권장. 아래 층은 고정되어 역전파 없이 계산됩니다. KoBERT 크기에서 전체 미세 조정보다 약 3배 "
        "빠릅니다. 정확도 비용: 작은 사전학습 모델로 NSMC에서 측정했을 때 -1.0%p(0.824 → 0.815). README의 속도 항목 "
        "참고.",
    ),
    "advanced": ("Advanced settings", "고급 설정"),
    "warmup": ("Warmup ratio", "워밍업 비율"),
    "weight_decay": ("Weight decay", "가중치 감쇠"),
    "dropout": ("Dropout", "드롭아웃"),
    "grad_clip": ("Gradient clipping", "그래디언트 클리핑"),
    "log_interval": ("Log interval (batches)", "로그 간격 (배치)"),
    "seed": ("Seed", "시드"),
    "precision": ("Precision", "정밀도"),
    "tokenizer_mode": ("Tokenizer mode", "토크나이저 모드"),
    "test_size": ("Test split (without a test file)", "테스트 비율 (테스트 파일이 없을 때)"),
    "validation_size": ("Validation split (without a validation file)", "검증 비율 (검증 파일이 없을 때)"),
    "eval_steps": ("Evaluate every (steps, 0: each epoch)", "평가 간격 (스텝, 0: 에폭마다)"),
    "best_metric": ("Metric that chooses the kept model", "남길 모델을 고르는 지표"),
    "early_stopping_patience": ("Early stopping patience (0: off)", "조기 종료 인내 횟수 (0: 사용 안 함)"),
    "early_stopping_min_delta": ("Early stopping minimum improvement", "조기 종료 최소 개선 폭"),
    "class_weights": ("Class weights", "클래스 가중치"),
    "advanced_help": (
        "Defaults follow the KoBERT NSMC tutorial: AdamW, cosine schedule, 10% warmup, clipping 1, dropout 0.5. "
        "Tokenizer mode gluonnlp is KoBERT's original splitting.",
        "기본값은 KoBERT NSMC 튜토리얼과 같습니다: AdamW, 코사인 스케줄, 워밍업 10%, 클리핑 1, 드롭아웃 0.5. "
        "토크나이저 모드 gluonnlp는 KoBERT 원래 방식입니다.",
    ),
    "start": ("Start training", "학습 시작"),
    "run_starting": (
        "Run `{run}` is starting. Follow it in the Logs tab.",
        "실행 `{run}` 을(를) 시작합니다. 로그 탭에서 진행 상황을 볼 수 있습니다.",
    ),
    "run_queued": (
        "Run `{run}` is queued: {ahead} job(s) ahead, about {wait} to wait.",
        "실행 `{run}` 이(가) 대기열에 들어갔습니다: 앞에 작업 {ahead}개, 예상 대기 {wait}.",
    ),
    # logs tab
    "my_runs": ("My runs", "내 실행"),
    "share_link": ("Share link (read-only)", "공유 링크 (읽기 전용)"),
    "no_run_yet": (
        "No run to follow yet. Start one in the Train tab or pick one above.",
        "아직 따라갈 실행이 없습니다. 학습 탭에서 시작하거나 위에서 실행을 고르세요.",
    ),
    "plot_steps": (
        "Loss and accuracy by step (training, and validation at each evaluation; the line marks the kept model)",
        "스텝별 손실과 정확도 (학습, 그리고 평가마다의 검증. 세로선은 남긴 모델)",
    ),
    "plot_epochs": (
        "Accuracy by epoch (train / validation / test; ★ the kept epoch; the test data never chooses the model)",
        "에폭별 정확도 (학습 / 검증 / 테스트. ★는 남긴 에폭이며, 테스트 데이터는 모델 선택에 쓰지 않습니다)",
    ),
    "log": ("Log", "로그"),
    "stop": ("Stop", "중지"),
    "export": ("Export model zip", "모델 zip 내보내기"),
    "delete": ("Delete", "삭제"),
    "delete_confirm": (
        "Delete this run and its model? This cannot be undone.",
        "이 실행과 모델을 지울까요? 되돌릴 수 없습니다.",
    ),
    "delete_yes": ("Delete", "삭제"),
    "delete_no": ("Cancel", "취소"),
    "export_file": (
        "Model zip (loads in the Predict tab, the CLI and transformers)",
        "모델 zip (예측 탭, CLI, transformers에서 불러올 수 있음)",
    ),
    "results_title": ("### Results on the test data (kept model)", "### 테스트 데이터 결과 (남긴 모델)"),
    "per_class": ("Scores per class", "클래스별 점수"),
    "mistakes": ("Misclassified test sentences (most confident first)", "잘못 분류된 테스트 문장 (확신도 높은 순)"),
    "run": ("Run", "실행"),
    "backbone": ("backbone", "백본"),
    "state": ("state", "상태"),
    "state_queued": ("queued", "대기 중"),
    "state_running": ("training", "학습 중"),
    "state_done": ("done", "완료"),
    "state_stopped": ("stopped", "중지됨"),
    "state_failed": ("failed", "실패"),
    "state_interrupted": ("interrupted", "중단됨"),
    "queue_line": ("{ahead} job(s) ahead, about {wait} to wait", "앞에 작업 {ahead}개, 예상 대기 {wait}"),
    "read_only": (
        "🔗 A shared run: read-only (only its owner can stop, export or delete it).",
        "🔗 공유된 실행입니다: 읽기 전용 (중지·내보내기·삭제는 소유자만).",
    ),
    "progress_line": (
        "epoch {epoch}/{epochs} · step {step}/{steps} · elapsed {elapsed} · ETA {eta} · {speed} sentences/s",
        "에폭 {epoch}/{epochs} · 단계 {step}/{steps} · 경과 {elapsed} · 남은 시간 {eta} · 초당 {speed}문장",
    ),
    "progress_preparing": ("Preparing the model and the data…", "모델과 데이터를 준비하는 중…"),
    "series_loss": ("loss", "손실"),
    "series_acc": ("train accuracy", "학습 정확도"),
    "split_train": ("train", "학습"),
    "split_test": ("test", "테스트"),
    "metrics_line": (
        "**Accuracy {accuracy}** · **macro-F1 {f1}** · model of epoch {epoch}/{epochs} · {n:,} test sentences",
        "**정확도 {accuracy}** · **macro-F1 {f1}** · 에폭 {epoch}/{epochs} 모델 · 테스트 문장 {n:,}개",
    ),
    "col_class": ("class", "클래스"),
    "col_precision": ("precision", "정밀도"),
    "col_recall": ("recall", "재현율"),
    "col_f1": ("F1", "F1"),
    "col_support": ("sentences", "문장 수"),
    "cm_title": ("Confusion matrix (rows: true, columns: predicted)", "혼동 행렬 (행: 정답, 열: 예측)"),
    "cm_corner": ("true ↓ · predicted →", "정답 ↓ · 예측 →"),
    "col_text": ("sentence", "문장"),
    "col_true": ("true", "정답"),
    "col_predicted": ("predicted", "예측"),
    "col_confidence": ("confidence", "확신도"),
    "stop_requested": (
        "Stop requested: the run stops after its current step and keeps the best model so far on the validation data.",
        "중지를 요청했습니다. 현재 단계가 끝나면 멈추고, 지금까지 검증 데이터에서 가장 좋았던 모델을 남깁니다.",
    ),
    "deleted": ("Run {run} deleted.", "실행 {run} 을(를) 삭제했습니다."),
    # validation, the kept model, resume and continue in the web app (#25)
    "series_valid_loss": ("validation loss", "검증 손실"),
    "series_valid_acc": ("validation accuracy", "검증 정확도"),
    "series_kept": ("kept model", "남긴 모델"),
    "split_valid": ("validation", "검증"),
    "metric_accuracy": ("accuracy", "정확도"),
    "metric_macro_f1": ("macro-F1", "macro-F1"),
    "kept_line_epoch": (
        "**Kept model: epoch {epoch}** (validation {metric} {value}), chosen on the validation data; the per-epoch "
        "test figures are shown for reference only and never choose.",
        "**남긴 모델: {epoch} 에폭** (검증 {metric} {value}). 검증 데이터로 골랐으며, 에폭별 테스트 수치는 참고용일 "
        "뿐 선택에 쓰지 않습니다.",
    ),
    "kept_line_step": (
        "**Kept model: epoch {epoch}, step {step}** (validation {metric} {value}), chosen on the validation data; the "
        "per-epoch test figures are shown for reference only and never choose.",
        "**남긴 모델: {epoch} 에폭 {step} 스텝** (검증 {metric} {value}). 검증 데이터로 골랐으며, 에폭별 테스트 "
        "수치는 참고용일 뿐 선택에 쓰지 않습니다.",
    ),
    "early_stopped_line": (
        "Stopped early: the validation data stopped improving.",
        "조기 종료: 검증 성능이 더 나아지지 않아 학습을 멈췄습니다.",
    ),
    "resume": ("Resume", "이어서 학습"),
    "continue_training": ("Continue training from this model", "이 모델에서 계속 학습"),
    "resume_requested": (
        "Run {run} will resume from its last checkpoint.",
        "실행 {run} 을(를) 마지막 체크포인트에서 이어서 학습합니다.",
    ),
    "continue_from": (
        "**Continue from run `{run}`**: training starts from its model (head included); the data must have the same "
        "classes.",
        "**실행 `{run}` 에서 계속 학습**: 이 모델(분류 헤드 포함)에서 학습을 시작합니다. 데이터의 클래스가 같아야 "
        "합니다.",
    ),
    "continue_cancel": ("Start from the backbone instead", "처음부터 학습하기"),
    "continue_chosen": (
        "The Train tab now starts from run {run}'s model: upload the new data and press Start.",
        "학습 탭이 이제 실행 {run} 의 모델에서 시작합니다. 새 데이터를 올리고 학습 시작을 누르세요.",
    ),
    "err_not_resumable": (
        "Run {run} cannot be resumed: only an interrupted, stopped or failed run with a checkpoint can.",
        "실행 {run} 은(는) 이어서 학습할 수 없습니다. 체크포인트가 있는 중단·중지·실패한 실행만 가능합니다.",
    ),
    "err_cannot_continue": (
        "Run {run} cannot be continued: only a finished run with a model can.",
        "실행 {run} 에서는 계속 학습할 수 없습니다. 모델이 있는 끝난 실행만 가능합니다.",
    ),
    "valid_file": ("Validation data (optional)", "검증 데이터 (선택)"),
    "no_valid_file": (
        "Without a validation file, a stratified share of the training data (the validation split) is held out to "
        "choose the kept model.",
        "검증 파일이 없으면 학습 데이터의 일부(검증 비율)를 층화 추출해 남길 모델을 고르는 데 씁니다.",
    ),
    "valid_file_used": (
        "The validation file chooses the kept model; the test data never does.",
        "남길 모델은 검증 파일로 고르며, 테스트 데이터로는 고르지 않습니다.",
    ),
    # predict tab
    "model_source": ("Model", "모델"),
    "source_run": ("My run", "내 실행"),
    "source_zip": ("Upload a model zip", "모델 zip 올리기"),
    "source_path": ("Local folder / hub id", "로컬 폴더 / 허브 id"),
    "my_models": ("My trained models", "학습된 내 모델"),
    "model_zip": ("Exported model zip", "내보낸 모델 zip"),
    "model_path": ("Model folder or hub id", "모델 폴더 또는 허브 id"),
    "load": ("Load", "불러오기"),
    "model_ref": ("Model in use", "사용할 모델"),
    "sentence": ("Sentence (predicted as you type)", "문장 (입력하는 대로 예측)"),
    "prediction": ("Class probabilities", "클래스 확률"),
    "pieces": ("The model's tokens", "모델의 토큰 조각"),
    "pieces_help": (
        "Red pieces are unknown to the model's tokenizer ([UNK]); grey ones are its special tokens. Many unknown "
        "pieces hurt accuracy.",
        "빨간색은 모델의 토크나이저가 모르는 [UNK] 조각, 회색은 특수 토큰입니다. 모르는 조각이 많으면 정확도가 "
        "떨어집니다.",
    ),
    "examples": ("Example sentences (movie reviews)", "예시 문장 (영화 리뷰)"),
    "many_lines": ("Several sentences (one per line)", "여러 문장 (한 줄에 하나)"),
    "predict_lines": ("Predict these lines", "여러 문장 예측"),
    "predict_file": ("File of sentences (.tsv / .csv / .txt)", "문장 파일 (.tsv / .csv / .txt)"),
    "predict_file_button": ("Predict file → CSV", "파일 예측 → CSV"),
    "predictions_csv": ("Predictions CSV", "예측 결과 CSV"),
    "predictions": ("Predictions", "예측 결과"),
    "zip_loaded": ("Model zip loaded.", "모델 zip을 불러왔습니다."),
    # errors
    "err_same_columns": ("The text and label columns must differ.", "텍스트 열과 라벨 열은 서로 달라야 합니다."),
    "err_custom_model_empty": ("Enter a model folder or hub id.", "모델 폴더나 허브 id를 입력하세요."),
    "err_custom_models_off": (
        "This server accepts no other model folders or hub ids; choose a listed backbone, one of your runs or a "
        "model zip.",
        "이 서버에서는 목록에 없는 폴더나 허브 id로 모델을 지정할 수 없습니다. 목록의 백본, 내 실행, 모델 zip 중에서 "
        "고르세요.",
    ),
    "err_unknown_options": ("Unknown settings: {names}.", "알 수 없는 설정입니다: {names}."),
    "err_options_not_object": (
        "options must be a JSON object of setting names and values.",
        "options는 설정 이름과 값의 JSON 객체여야 합니다.",
    ),
    "err_not_a_number": (
        "Setting {name} must be a number, not '{value}'.",
        "설정 {name} 은(는) 숫자여야 합니다 ('{value}').",
    ),
    "err_no_visitor": (
        "No visitor token: reload the page (API: pass a visitor string).",
        "방문자 토큰이 없습니다. 페이지를 새로 고치세요.",
    ),
    "err_short_visitor": (
        "A visitor token must be at least {n} characters long (a random string nobody can guess).",
        "방문자 토큰은 {n}자 이상이어야 합니다(추측할 수 없는 임의의 문자열).",
    ),
    "err_no_train_file": ("Upload a training data file first.", "먼저 학습 데이터 파일을 올리세요."),
    "err_no_run_chosen": ("Choose a run first.", "실행을 먼저 고르세요."),
    "err_no_such_run": ("There is no run '{run}'.", "'{run}' 실행이 없습니다."),
    "err_not_owner": (
        "Run {run} belongs to another visitor, so you cannot control it.",
        "실행 {run} 은(는) 다른 방문자의 것이라 제어할 수 없습니다.",
    ),
    "err_no_model": (
        "Choose a model first: one of your runs, a model zip, or a folder/hub id.",
        "먼저 모델을 고르세요: 내 실행, 모델 zip, 또는 폴더/허브 id.",
    ),
    "err_zip_too_big": (
        "{name} is larger than the {limit:,} MB a model zip may be.",
        "{name} 이(가) 모델 zip 한도 {limit:,} MB보다 큽니다.",
    ),
    "err_no_zip": (
        "The uploaded model '{ref}' is gone; upload the zip again.",
        "올린 모델 '{ref}' 을(를) 찾을 수 없습니다. zip을 다시 올리세요.",
    ),
    "err_run_no_model": (
        "Run {run} has no model yet (no epoch has completed).",
        "실행 {run} 에는 아직 모델이 없습니다 (완료된 에폭이 없음).",
    ),
    "err_no_text": ("Enter a sentence to classify.", "예측할 문장을 입력하세요."),
    "err_text_too_long": (
        "The sentence is too long (at most {limit:,} characters).",
        "문장이 너무 깁니다 (최대 {limit:,}자).",
    ),
    "err_too_many_lines": (
        "{n:,} sentences is more than the {limit:,} that can be predicted at once.",
        "문장이 {n:,}개로, 한 번에 예측할 수 있는 {limit:,}개를 넘습니다.",
    ),
    # ---- #15 explanations (explain.py) ----
    "err_unknown_label": (
        "The model has no class '{label}'; its classes are: {labels}.",
        "모델에 '{label}' 클래스가 없습니다. 이 모델의 클래스: {labels}.",
    ),
    # ---- #15 web UI (Predict tab, Logs tab's mistakes) ----
    "explanation": ("Why this label? Each word's share", "왜 이 클래스일까? 단어별 기여도"),
    "explain_class": ("Class to explain", "설명할 클래스"),
    "explain_predicted": ("The predicted class", "예측된 클래스"),
    "explain_help": (
        "Red words push the model towards the explained class, purple words against it; the stronger the colour, "
        "the larger the word's share (Integrated Gradients).",
        "빨간 단어는 모델을 설명하는 클래스 쪽으로, 보라색 단어는 반대쪽으로 밉니다. 색이 진할수록 그 단어의 몫이 "
        "큽니다 (통합 그래디언트).",
    ),
    "explain_line": (
        "Explaining **{label}** (probability {probability:.1%}): red words push the model towards it, purple words "
        "against it; the stronger the colour, the larger the word's share (Integrated Gradients, scaled to the "
        "strongest word).",
        "**{label}** 설명 (확률 {probability:.1%}): 빨간 단어는 모델을 이 클래스 쪽으로, 보라색 단어는 반대쪽으로 "
        "밉니다. 색이 진할수록 그 단어의 몫이 큽니다 (통합 그래디언트, 가장 강한 단어 기준).",
    ),
    "mistakes_hint": (
        "Click a sentence to see why the model got it wrong.",
        "문장을 누르면 모델이 왜 틀렸는지 볼 수 있습니다.",
    ),
    "mistake_explanation": ("Why the model chose the wrong class", "모델이 틀린 클래스를 고른 이유"),
    "mistake_line": (
        "True class **{label}**, predicted **{predicted}** (probability {probability:.1%}): red words pushed the "
        "model towards {predicted}, purple words against it.",
        "정답 **{label}**, 예측 **{predicted}** (확률 {probability:.1%}): 빨간 단어는 모델을 {predicted} 쪽으로, "
        "보라색 단어는 반대쪽으로 밀었습니다.",
    ),
    "err_not_a_mistake": (
        "Click a sentence in the table of mistakes above.",
        "위의 잘못 분류된 문장 표에서 문장을 누르세요.",
    ),
    "err_no_predict_file": ("Upload a file of sentences to classify.", "예측할 문장 파일을 올리세요."),
    "err_unexpected": (
        "Something unexpected went wrong ({kind}); the server log has the details.",
        "예상하지 못한 오류가 났습니다 ({kind}). 서버 로그를 확인하세요.",
    ),
    # ---- #14 front-ends ----
    # The curated backbones (backbones.py) in the Train tab, the CLI's `models` and the model card.
    "note_hub": (
        "{model}: a {family} encoder from the Hugging Face hub, with {tokenizer}; downloaded once and cached. "
        "License: {license}.",
        "{model}: Hugging Face 허브의 {family} 인코더로, {tokenizer}를 씁니다. 한 번 내려받아 캐시합니다. "
        "라이선스: {license}.",
    ),
    "facts_size": ("Size: {size} parameters", "크기: 파라미터 {size}개"),
    "facts_speed_measured": (
        "Training speed here: {speed} sentences/s (measured)",
        "이 서버의 학습 속도: 초당 {speed}문장 (측정값)",
    ),
    "facts_speed_estimate": (
        "Training speed here: about {speed} sentences/s (an estimate: {reference}'s measured speed, scaled by the "
        "compute per token)",
        "이 서버의 학습 속도: 초당 약 {speed}문장 (추정값: {reference}의 측정 속도를 토큰당 계산량 비율로 환산)",
    ),
    "facts_speed_none": (
        "Training speed here: not known yet (no model has trained on this server)",
        "이 서버의 학습 속도: 아직 알 수 없음 (이 서버에서 학습한 모델이 없음)",
    ),
    "facts_card": (
        "NSMC test accuracy {accuracy}%: the figure in {card}, not measured here",
        "NSMC 테스트 정확도 {accuracy}%: {card}에 실린 수치이며 여기서 잰 값이 아닙니다",
    ),
    "facts_card_none": ("NSMC accuracy: its model card reports none", "NSMC 정확도: 모델 카드에 없음"),
    "tok_kobert": ("KoBERT's own SentencePiece tokenizer", "KoBERT 자체 SentencePiece 토크나이저"),
    "tok_wordpiece": (
        "its own WordPiece tokenizer (tokenizer.json or vocab.txt)",
        "자체 WordPiece 토크나이저(tokenizer.json 또는 vocab.txt)",
    ),
    "tok_fast": (
        "its own tokenizer (tokenizer.json, read by AutoTokenizer)",
        "자체 토크나이저(AutoTokenizer로 읽는 tokenizer.json)",
    ),
    "tok_tiny": (
        "a SentencePiece tokenizer learnt from the training sentences",
        "학습 문장으로 배운 SentencePiece 토크나이저",
    ),
    "license_tiny": (
        "none: trained from scratch here, nothing downloaded",
        "없음: 여기서 처음부터 학습, 내려받은 것 없음",
    ),
    "license_unknown": ("unknown: see the model's own card", "알 수 없음: 모델 자체의 카드를 확인하세요"),
    # ---- #16 serving backends (serving/choice.py: the Predict tab's line under the model) ----
    "serving_measured": (
        "Served with {backend}: {ms:.1f} ms a sentence, {speedup:.1f}x fp32; within {diff:.3f} of fp32's "
        "probabilities.",
        "{backend}로 예측합니다: 문장당 {ms:.1f} ms, fp32의 {speedup:.1f}배 속도이며 fp32 확률과의 차이는 {diff:.3f} "
        "이내입니다.",
    ),
    "serving_fp32": (
        "Served with {backend}: {ms:.1f} ms a sentence, the fastest path here that keeps to fp32's probabilities.",
        "{backend}로 예측합니다: 문장당 {ms:.1f} ms로, 이 서버에서 fp32 확률을 지키는 가장 빠른 경로입니다.",
    ),
    "serving_fixed": ("Served with {backend}.", "{backend}로 예측합니다."),
    "serving_refused": (
        "Not used: {backends} (more than 0.01 from fp32's probabilities, or not buildable for this model).",
        "쓰지 않음: {backends} (fp32 확률과 0.01 넘게 다르거나 이 모델로 만들 수 없음).",
    ),
}

# Words the engine puts into its sentences (a file kind, a separator, a column role, a run state), in Korean.
TERMS_KO: dict[str, str] = {
    "accuracy": "정확도",  # config.best_metric's choices, in the early-stop notice
    "macro_f1": "매크로 F1",
    "an Excel workbook": "엑셀 통합 문서",
    "a ZIP archive": "ZIP 압축 파일",
    "a PNG image": "PNG 이미지",
    "a JPEG image": "JPEG 이미지",
    "a GIF image": "GIF 이미지",
    "a PDF document": "PDF 문서",
    "an Excel (.xls) workbook": "엑셀(.xls) 통합 문서",
    "a binary file": "바이너리 파일",
    "tab": "탭",
    "comma": "쉼표",
    "semicolon": "세미콜론",
    "text": "텍스트",
    "label": "라벨",
    "running": "실행 중",
    "queued": "대기 중",
    "done": "완료",
    "stopped": "중지됨",
    "failed": "실패",
    "interrupted": "중단됨",
    "damaged": "손상됨",
}


class Term(str):
    """An English word or phrase inside an engine sentence, shown in Korean (TERMS_KO) where the sentence is."""

    def text(self, lang: str) -> str:
        return TERMS_KO.get(str(self), str(self)) if lang == "ko" else str(self)


def fmt_duration(seconds: float | None) -> str:
    """`1:05`, `1:02:03`; `-` when unknown."""
    if seconds is None:
        return "-"
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def t(lang: str, key: str, **params: Any) -> str:
    """The sentence for key in lang ("ko" Korean, anything else English), formatted with params.

    An unknown key raises KeyError everywhere (tests/test_messages.py checks every key the code names exists).
    """
    return MESSAGES[key][1 if lang == "ko" else 0].format(**params)


def catalogue(lang: str) -> dict[str, str]:
    """Every template in lang, unformatted (for gr.I18n's static labels)."""
    return {key: pair[1 if lang == "ko" else 0] for key, pair in MESSAGES.items()}
