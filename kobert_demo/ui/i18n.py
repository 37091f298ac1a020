"""Korean by default, English for browsers that ask for it: static labels through gr.I18n, messages through `t()`.

The browser picks the language (navigator.language): English when it asks for English, Korean for every other
language the Gradio frontend knows. Messages made on the server follow the same rule from Accept-Language.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

KO: dict[str, str] = {
    # header and tabs
    "title": "# KoBERT 데모 · 한국어 문장 분류",
    "intro": "라벨이 달린 한국어 문장으로 **KoBERT**(SKT Brain의 한국어 BERT)를 미세 조정하고, 바로 예측해 보세요. "
    "학습은 서버의 작업 대기열에서 한 번에 하나씩 진행되며, 이 브라우저에서 시작한 실행만 보이고 제어할 수 있습니다.",
    "tab_train": "학습",
    "tab_logs": "로그",
    "tab_predict": "예측",
    "footer": "API: 아래의 'API를 통해 사용' 또는 README의 gradio_client 예시를 참고하세요.",
    # train tab
    "train_file": "학습 데이터 (.tsv / .csv / .txt)",
    "test_file": "테스트 데이터 (선택)",
    "file_help": "머리글 행이 있는 표, UTF-8 또는 CP949(엑셀). 텍스트 열과 라벨 열은 자동으로 찾습니다 "
    "(NSMC의 `id / document / label` 그대로 가능). 라벨은 문자열이든 숫자든, 클래스는 몇 개든 됩니다.",
    "limits": "한도: 파일 {mb:,} MB · {rows:,}행 · 문장당 {chars:,}자 · 예측은 한 번에 {lines:,}문장까지",
    "text_col": "텍스트 열",
    "label_col": "라벨 열",
    "preview": "미리보기 (처음 몇 행)",
    "classes_plot": "클래스별 행 수",
    "file_line": "**{name}** · {encoding} · {separator} · {read:,}행 읽음, {kept:,}행 사용 · 제외: {dropped}",
    "classes_line": "클래스 {n}개",
    "no_test_file": "테스트 파일이 없으면 학습 데이터의 일부(테스트 비율)를 층화 추출해 평가에 씁니다.",
    "sep_tab": "탭 구분",
    "sep_comma": "쉼표 구분",
    "sep_semicolon": "세미콜론 구분",
    "sep_pipe": "| 구분",
    "sep_other": "구분자 기타",
    "none": "없음",
    "drop_empty_text": "빈 텍스트",
    "drop_empty_label": "빈 라벨",
    "backbone_title": "### 백본 모델",
    "backbone_kobert": "KoBERT (skt/kobert-base-v1, 허브)",
    "backbone_custom": "로컬 폴더 또는 허브 id",
    "backbone_tiny": "tiny (오프라인 · KoBERT 아님)",
    "custom_model": "모델 폴더 또는 허브 id",
    "note_kobert": "SKT Brain의 KoBERT를 Hugging Face 허브에서 한 번 내려받아 캐시합니다. "
    "CPU만 있는 서버에서는 느립니다(GPU 권장).",
    "note_tiny": "**tiny는 KoBERT가 아닙니다.** 학습 문장으로 어휘를 배우는 작은 무작위 초기화 BERT로, "
    "네트워크 없이 CPU에서 몇 초~몇 분 만에 학습됩니다. 학습률 기본값은 1e-3입니다.",
    "note_custom": "KoBERT 형태의 BERT 폴더(config.json, model.safetensors, SentencePiece *.model) 또는 허브 id.",
    "epochs": "에폭",
    "batch_size": "배치 크기",
    "max_len": "최대 길이 (토큰)",
    "lr": "학습률",
    "cpu_mode": "CPU 모드: 위쪽 2개 층만 학습",
    "cpu_mode_help": "GPU가 없을 때 권장. 아래 층은 고정되어 역전파 없이 계산됩니다. "
    "KoBERT 크기에서 전체 미세 조정보다 약 3배 빠릅니다. 정확도 비용: 작은 사전학습 모델로 "
    "NSMC에서 측정했을 때 -1.0%p(0.824 → 0.815). README의 속도 항목 참고.",
    "advanced": "고급 설정",
    "warmup": "워밍업 비율",
    "weight_decay": "가중치 감쇠",
    "dropout": "드롭아웃",
    "grad_clip": "그래디언트 클리핑",
    "log_interval": "로그 간격 (배치)",
    "seed": "시드",
    "precision": "정밀도",
    "tokenizer_mode": "토크나이저 모드",
    "test_size": "테스트 비율 (테스트 파일이 없을 때)",
    "advanced_help": "기본값은 KoBERT NSMC 튜토리얼과 같습니다: AdamW, 코사인 스케줄, 워밍업 10%, 클리핑 1, "
    "드롭아웃 0.5. 토크나이저 모드 gluonnlp는 KoBERT 원래 방식입니다.",
    "start": "학습 시작",
    "run_starting": "실행 `{run}` 을(를) 시작합니다. 로그 탭에서 진행 상황을 볼 수 있습니다.",
    "run_queued": "실행 `{run}` 이(가) 대기열에 들어갔습니다: 앞에 작업 {ahead}개, 예상 대기 {wait}.",
    # logs tab
    "my_runs": "내 실행",
    "share_link": "공유 링크 (읽기 전용)",
    "no_run_yet": "아직 따라갈 실행이 없습니다. 학습 탭에서 시작하거나 위에서 실행을 고르세요.",
    "plot_steps": "단계별 손실과 학습 정확도",
    "plot_epochs": "에폭별 정확도 (학습 / 테스트)",
    "log": "로그",
    "stop": "중지",
    "export": "모델 zip 내보내기",
    "delete": "삭제",
    "delete_confirm": "이 실행과 모델을 지울까요? 되돌릴 수 없습니다.",
    "delete_yes": "삭제",
    "delete_no": "취소",
    "export_file": "모델 zip (예측 탭, CLI, transformers에서 불러올 수 있음)",
    "results_title": "### 결과 (마지막으로 완료된 에폭)",
    "per_class": "클래스별 점수",
    "mistakes": "잘못 분류된 테스트 문장 (확신도 높은 순)",
    "run": "실행",
    "backbone": "백본",
    "state": "상태",
    "state_queued": "대기 중",
    "state_running": "학습 중",
    "state_done": "완료",
    "state_stopped": "중지됨",
    "state_failed": "실패",
    "state_interrupted": "중단됨",
    "queue_line": "앞에 작업 {ahead}개, 예상 대기 {wait}",
    "read_only": "🔗 공유된 실행입니다: 읽기 전용 (중지·내보내기·삭제는 소유자만).",
    "progress_line": "에폭 {epoch}/{epochs} · 단계 {step}/{steps} · 경과 {elapsed} · 남은 시간 {eta} · "
    "초당 {speed}문장",
    "progress_preparing": "모델과 데이터를 준비하는 중…",
    "series_loss": "손실",
    "series_acc": "학습 정확도",
    "split_train": "학습",
    "split_test": "테스트",
    "metrics_line": "**정확도 {accuracy}** · **macro-F1 {f1}** · 에폭 {epoch}/{epochs} 모델 · 테스트 문장 {n:,}개",
    "col_class": "클래스",
    "col_precision": "정밀도",
    "col_recall": "재현율",
    "col_f1": "F1",
    "col_support": "문장 수",
    "cm_title": "혼동 행렬 (행: 정답, 열: 예측)",
    "cm_corner": "정답 ↓ · 예측 →",
    "col_text": "문장",
    "col_true": "정답",
    "col_predicted": "예측",
    "col_confidence": "확신도",
    "stop_requested": "중지를 요청했습니다. 현재 단계가 끝나면 멈추고, 마지막으로 완료된 에폭의 모델을 남깁니다.",
    "deleted": "실행 {run} 을(를) 삭제했습니다.",
    # predict tab
    "model_source": "모델",
    "source_run": "내 실행",
    "source_zip": "모델 zip 올리기",
    "source_path": "로컬 폴더 / 허브 id",
    "my_models": "학습된 내 모델",
    "model_zip": "내보낸 모델 zip",
    "model_path": "모델 폴더 또는 허브 id",
    "load": "불러오기",
    "model_ref": "사용할 모델",
    "sentence": "문장 (입력하는 대로 예측)",
    "prediction": "클래스 확률",
    "pieces": "KoBERT 토큰 조각",
    "pieces_help": "빨간색은 어휘에 없는 [UNK] 조각입니다. 많으면 정확도가 떨어집니다.",
    "examples": "예시 문장 (영화 리뷰)",
    "many_lines": "여러 문장 (한 줄에 하나)",
    "predict_lines": "여러 문장 예측",
    "predict_file": "문장 파일 (.tsv / .csv / .txt)",
    "predict_file_button": "파일 예측 → CSV",
    "predictions_csv": "예측 결과 CSV",
    "predictions": "예측 결과",
    "zip_loaded": "모델 zip을 불러왔습니다.",
    # errors
    "err_same_columns": "텍스트 열과 라벨 열은 서로 달라야 합니다.",
    "err_test_labels": "{file} 에 학습 파일에 없는 라벨이 있습니다: {labels}.",
    "err_custom_model_empty": "모델 폴더나 허브 id를 입력하세요.",
    "err_custom_models_off": "이 서버에서는 폴더나 허브 id로 모델을 지정할 수 없습니다. "
    "KoBERT, tiny, 내 실행, 모델 zip 중에서 고르세요.",
    "err_unknown_options": "알 수 없는 설정입니다: {names}.",
    "err_options_not_object": "options는 설정 이름과 값의 JSON 객체여야 합니다.",
    "err_not_a_number": "설정 {name} 은(는) 숫자여야 합니다 ('{value}').",
    "err_no_visitor": "방문자 토큰이 없습니다. 페이지를 새로 고치세요.",
    "err_short_visitor": "방문자 토큰은 {n}자 이상이어야 합니다(추측할 수 없는 임의의 문자열).",
    "err_no_train_file": "먼저 학습 데이터 파일을 올리세요.",
    "err_no_run_chosen": "실행을 먼저 고르세요.",
    "err_no_such_run": "'{run}' 실행이 없습니다.",
    "err_not_owner": "실행 {run} 은(는) 다른 방문자의 것이라 제어할 수 없습니다.",
    "err_no_model": "먼저 모델을 고르세요: 내 실행, 모델 zip, 또는 폴더/허브 id.",
    "err_zip_too_big": "{name} 이(가) 모델 zip 한도 {limit:,} MB보다 큽니다.",
    "err_no_zip": "올린 모델 '{ref}' 을(를) 찾을 수 없습니다. zip을 다시 올리세요.",
    "err_run_no_model": "실행 {run} 에는 아직 모델이 없습니다 (완료된 에폭이 없음).",
    "err_no_text": "예측할 문장을 입력하세요.",
    "err_text_too_long": "문장이 너무 깁니다 (최대 {limit:,}자).",
    "err_too_many_lines": "문장이 {n:,}개로, 한 번에 예측할 수 있는 {limit:,}개를 넘습니다.",
    "err_no_predict_file": "예측할 문장 파일을 올리세요.",
    "err_unexpected": "예상하지 못한 오류가 났습니다 ({kind}). 서버 로그를 확인하세요.",
}

EN: dict[str, str] = {
    "title": "# KoBERT Demo · Korean text classification",
    "intro": "Fine-tune **KoBERT** (SKT Brain's Korean BERT) on your own labelled Korean sentences and use the "
    "classifier right away. Training runs in a server-side queue, one job at a time; you see and control only the "
    "runs started from this browser.",
    "tab_train": "Train",
    "tab_logs": "Logs",
    "tab_predict": "Predict",
    "footer": "API: see 'Use via API' below, or the gradio_client example in the README.",
    "train_file": "Training data (.tsv / .csv / .txt)",
    "test_file": "Test data (optional)",
    "file_help": "A table with a header row, UTF-8 or CP949 (Excel). The text and label columns are detected "
    "(NSMC's `id / document / label` works as is). Labels may be strings or numbers, any number of classes.",
    "limits": "Limits: files up to {mb:,} MB · {rows:,} rows · {chars:,} characters per sentence · "
    "{lines:,} sentences per prediction",
    "text_col": "Text column",
    "label_col": "Label column",
    "preview": "Preview (first rows)",
    "classes_plot": "Rows per class",
    "file_line": "**{name}** · {encoding} · {separator} · {read:,} rows read, {kept:,} used · dropped: {dropped}",
    "classes_line": "{n} classes",
    "no_test_file": "Without a test file, a stratified share of the training data (the test split) is held out.",
    "sep_tab": "tab-separated",
    "sep_comma": "comma-separated",
    "sep_semicolon": "semicolon-separated",
    "sep_pipe": "|-separated",
    "sep_other": "other separator",
    "none": "none",
    "drop_empty_text": "empty text",
    "drop_empty_label": "empty label",
    "backbone_title": "### Backbone",
    "backbone_kobert": "KoBERT (skt/kobert-base-v1, hub)",
    "backbone_custom": "Local folder or hub id",
    "backbone_tiny": "tiny (offline · not KoBERT)",
    "custom_model": "Model folder or hub id",
    "note_kobert": "SKT Brain's KoBERT, downloaded once from the Hugging Face hub and cached. "
    "Slow on a CPU-only server (a GPU is recommended).",
    "note_tiny": "**tiny is not KoBERT.** It is a small randomly initialised BERT whose vocabulary is learnt from "
    "your training sentences: no network, trains on a CPU in seconds to minutes. Its default learning rate is 1e-3.",
    "note_custom": "A BERT folder shaped like KoBERT (config.json, model.safetensors, a SentencePiece *.model) "
    "or a hub id.",
    "epochs": "Epochs",
    "batch_size": "Batch size",
    "max_len": "Max length (tokens)",
    "lr": "Learning rate",
    "cpu_mode": "CPU mode: train only the top 2 layers",
    "cpu_mode_help": "Recommended without a GPU. The lower layers are frozen and run without backpropagation: about "
    "3x faster than full fine-tuning at KoBERT's size. Accuracy cost measured on NSMC with a small pretrained model: "
    "-1.0 point (0.824 -> 0.815); see the README's speed section.",
    "advanced": "Advanced settings",
    "warmup": "Warmup ratio",
    "weight_decay": "Weight decay",
    "dropout": "Dropout",
    "grad_clip": "Gradient clipping",
    "log_interval": "Log interval (batches)",
    "seed": "Seed",
    "precision": "Precision",
    "tokenizer_mode": "Tokenizer mode",
    "test_size": "Test split (without a test file)",
    "advanced_help": "Defaults follow the KoBERT NSMC tutorial: AdamW, cosine schedule, 10% warmup, clipping 1, "
    "dropout 0.5. Tokenizer mode gluonnlp is KoBERT's original splitting.",
    "start": "Start training",
    "run_starting": "Run `{run}` is starting. Follow it in the Logs tab.",
    "run_queued": "Run `{run}` is queued: {ahead} job(s) ahead, about {wait} to wait.",
    "my_runs": "My runs",
    "share_link": "Share link (read-only)",
    "no_run_yet": "No run to follow yet. Start one in the Train tab or pick one above.",
    "plot_steps": "Loss and training accuracy by step",
    "plot_epochs": "Accuracy by epoch (train / test)",
    "log": "Log",
    "stop": "Stop",
    "export": "Export model zip",
    "delete": "Delete",
    "delete_confirm": "Delete this run and its model? This cannot be undone.",
    "delete_yes": "Delete",
    "delete_no": "Cancel",
    "export_file": "Model zip (loads in the Predict tab, the CLI and transformers)",
    "results_title": "### Results (last completed epoch)",
    "per_class": "Scores per class",
    "mistakes": "Misclassified test sentences (most confident first)",
    "run": "Run",
    "backbone": "backbone",
    "state": "state",
    "state_queued": "queued",
    "state_running": "training",
    "state_done": "done",
    "state_stopped": "stopped",
    "state_failed": "failed",
    "state_interrupted": "interrupted",
    "queue_line": "{ahead} job(s) ahead, about {wait} to wait",
    "read_only": "🔗 A shared run: read-only (only its owner can stop, export or delete it).",
    "progress_line": "epoch {epoch}/{epochs} · step {step}/{steps} · elapsed {elapsed} · ETA {eta} · "
    "{speed} sentences/s",
    "progress_preparing": "Preparing the model and the data…",
    "series_loss": "loss",
    "series_acc": "train accuracy",
    "split_train": "train",
    "split_test": "test",
    "metrics_line": "**Accuracy {accuracy}** · **macro-F1 {f1}** · model of epoch {epoch}/{epochs} · "
    "{n:,} test sentences",
    "col_class": "class",
    "col_precision": "precision",
    "col_recall": "recall",
    "col_f1": "F1",
    "col_support": "sentences",
    "cm_title": "Confusion matrix (rows: true, columns: predicted)",
    "cm_corner": "true ↓ · predicted →",
    "col_text": "sentence",
    "col_true": "true",
    "col_predicted": "predicted",
    "col_confidence": "confidence",
    "stop_requested": "Stop requested: the run stops after its current step and keeps the last completed epoch.",
    "deleted": "Run {run} deleted.",
    "model_source": "Model",
    "source_run": "My run",
    "source_zip": "Upload a model zip",
    "source_path": "Local folder / hub id",
    "my_models": "My trained models",
    "model_zip": "Exported model zip",
    "model_path": "Model folder or hub id",
    "load": "Load",
    "model_ref": "Model in use",
    "sentence": "Sentence (predicted as you type)",
    "prediction": "Class probabilities",
    "pieces": "KoBERT pieces",
    "pieces_help": "Red pieces are [UNK]: not in the vocabulary. Many of them hurt accuracy.",
    "examples": "Example sentences (movie reviews)",
    "many_lines": "Several sentences (one per line)",
    "predict_lines": "Predict these lines",
    "predict_file": "File of sentences (.tsv / .csv / .txt)",
    "predict_file_button": "Predict file → CSV",
    "predictions_csv": "Predictions CSV",
    "predictions": "Predictions",
    "zip_loaded": "Model zip loaded.",
    "err_same_columns": "The text and label columns must differ.",
    "err_test_labels": "{file} has labels the training file lacks: {labels}.",
    "err_custom_model_empty": "Enter a model folder or hub id.",
    "err_custom_models_off": "This server does not accept model folders or hub ids; "
    "choose KoBERT, tiny, one of your runs or a model zip.",
    "err_unknown_options": "Unknown settings: {names}.",
    "err_options_not_object": "options must be a JSON object of setting names and values.",
    "err_not_a_number": "Setting {name} must be a number, not '{value}'.",
    "err_no_visitor": "No visitor token: reload the page (API: pass a visitor string).",
    "err_short_visitor": "A visitor token must be at least {n} characters long (a random string nobody can guess).",
    "err_no_train_file": "Upload a training data file first.",
    "err_no_run_chosen": "Choose a run first.",
    "err_no_such_run": "There is no run '{run}'.",
    "err_not_owner": "Run {run} belongs to another visitor, so you cannot control it.",
    "err_no_model": "Choose a model first: one of your runs, a model zip, or a folder/hub id.",
    "err_zip_too_big": "{name} is larger than the {limit:,} MB a model zip may be.",
    "err_no_zip": "The uploaded model '{ref}' is gone; upload the zip again.",
    "err_run_no_model": "Run {run} has no model yet (no epoch has completed).",
    "err_no_text": "Enter a sentence to classify.",
    "err_text_too_long": "The sentence is too long (at most {limit:,} characters).",
    "err_too_many_lines": "{n:,} sentences is more than the {limit:,} that can be predicted at once.",
    "err_no_predict_file": "Upload a file of sentences to classify.",
    "err_unexpected": "Something unexpected went wrong ({kind}); the server log has the details.",
}

# The languages the Gradio frontend knows (gradio/templates/frontend/assets, lang/*.json).
GRADIO_LOCALES = [
    *("ar", "ca", "ckb", "de", "en", "es", "et", "eu", "fa", "fi", "fr", "he", "hi", "id", "ja", "ko", "lt"),
    *("nb", "nl", "pl", "pt-BR", "pt", "ro", "ru", "sv", "ta", "th", "tr", "uk", "ur", "uz", "zh-CN", "zh-TW"),
]

I18N = gr.I18n(**{locale: EN if locale == "en" else KO for locale in GRADIO_LOCALES})


def t(lang: str, key: str, **values: Any) -> str:
    """The message `key` in lang ("ko" or "en"), formatted with values."""
    text = (EN if lang == "en" else KO)[key]
    return text.format(**values) if values else text


def pick_lang(accept_language: str | None) -> str:
    """ "en" or "ko" from an Accept-Language header, the way the frontend picks from navigator.language."""
    first = (accept_language or "").split(",")[0].split(";")[0].strip()
    if not first:
        return "ko"
    if first not in GRADIO_LOCALES:
        first = first.split("-")[0]
    if first not in GRADIO_LOCALES:
        return "en"
    return "en" if first == "en" else "ko"


def lang_of(request: gr.Request | None) -> str:
    """The visitor's language for messages made on the server."""
    headers = getattr(request, "headers", None) or {}
    return pick_lang(headers.get("accept-language"))
