"""Which code reads each config key: ``READS["section.key"]`` lists ``module:function`` entries (issue #18).

Every key of the schema (:class:`e2h.config.RunConfig`) must have at least one entry, and each entry must name a
function whose own code reads the key: an attribute access ``.key`` or the string ``"key"`` (``getattr``, a dict of
settings). An entry ending in ``*`` names a function that hands the whole section on (``model_dump``): pretrain's
keys reach ``policy.sft.run_sft`` that way. Keys of the shared trainer sections that only the ``training`` package
reads (``lr``, ``adam_betas``, ...) name its function; :data:`TRAINERS` names the function that hands each
trainer section to ``training``. tests/test_config_reads.py checks all of this, so a key nobody reads (or a
reader that stops reading it) fails the tests: remove the key, or wire it and list its reader here.
"""

from __future__ import annotations

import ast
import importlib
import inspect

from e2h.config import RunConfig

# trainer section -> the function that hands it to the training package (create_engine / batch_plan / schedule)
TRAINERS: dict[str, str] = {
    "prm": "prm.train:_start_engine",
    "sft": "policy.sft:run_sft",
    "pretrain": "policy.pretrain:build_base",
    "ppo": "policy.ppo:_build_models",
}

READS: dict[str, list[str]] = {
    'run.name': ['e2h.commands.eval_command:evaluate', 'e2h.commands.pipeline:rewrite_report', 'prm.model_card:render_model_card'],
    'run.out_dir': ['e2h.commands.doctor:run', 'e2h.commands.pipeline:run', 'policy.pretrain:build_base'],
    'run.seed': ['e2h.data.prepare:build_world', 'e2h.data.prepare:fingerprint', 'e2h.data.prepare:with_outcome_rows'],
    'data.source': ['e2h.data.commands:source_stats', 'e2h.data.prepare:_why_empty', 'e2h.data.prepare:fingerprint'],
    'data.math_train': ['e2h.data.commands:source_stats', 'e2h.data.prepare:build_math', 'e2h.commands.doctor:config_input_paths'],
    'data.math500': ['e2h.data.commands:source_stats', 'e2h.data.prepare:build_math', 'e2h.commands.doctor:config_input_paths'],
    'data.prm800k': ['e2h.data.commands:source_stats', 'e2h.data.prepare:_why_empty', 'e2h.data.prepare:build_math'],
    'data.processbench': ['e2h.data.commands:source_stats', 'e2h.commands.doctor:config_input_paths', 'prm.processbench:run'],
    'data.train_levels': ['e2h.data.prepare:_why_empty', 'e2h.data.prepare:build_math', 'e2h.data.prepare:build_world'],
    'data.prompt_levels': ['e2h.data.prepare:build_math', 'e2h.data.prepare:build_world'],
    'data.validation_size': ['e2h.data.prepare:build_math'],
    'data.validation_seed': ['e2h.data.prepare:build_math'],
    'data.include_additional_prm800k': ['e2h.data.prepare:build_math'],
    'data.problem_match': ['e2h.data.prepare:build_math'],
    'data.long_prompt_tokens': ['e2h.data.prepare:build_math'],
    'data.long_prompt_tokenizer': ['e2h.data.prepare:build_math'],
    'data.sft_source': ['e2h.data.prepare:_why_empty', 'e2h.data.prepare:build_math'],
    'data.prm_source': ['e2h.data.prepare:_why_empty', 'e2h.data.prepare:build_math'],
    'data.metamath': ['e2h.data.prepare:_why_empty', 'e2h.data.prepare:build_math'],
    'data.metamath_include_gsm': ['e2h.data.prepare:build_math'],
    'data.math_shepherd': ['e2h.data.prepare:_why_empty', 'e2h.data.prepare:build_math'],
    'data.shepherd_match': ['e2h.data.prepare:_why_empty', 'e2h.data.prepare:build_math'],
    'data.orm_samples': ['e2h.data.prepare:fingerprint', 'e2h.data.prepare:with_outcome_rows'],
    'data.orm_max_ratio': ['e2h.data.prepare:with_outcome_rows', 'e2h.commands.pipeline:demo_outcome_rows'],
    'data.test_excludes_prm800k_problems': ['e2h.data.prepare:build_math'],
    'world.seed': ['policy.pretrain:build_base'],
    'world.train_per_level': ['e2h.world:generate_world'],
    'world.validation_per_level': ['e2h.world:generate_world'],
    'world.test_per_level': ['e2h.world:generate_world'],
    'world.flawed_per_problem': ['e2h.world:world_step_examples'],
    'world.flaw_weights': ['e2h.world:world_step_examples'],
    'world.subjects': ['e2h.world:world_subjects'],
    'world.after_error': ['e2h.commands.pipeline:prm_pool_rows'],
    'world.leaf_max': ['e2h.world:world_scale', 'e2h.world.generator:_integer_leaf'],
    'world.value_cap': ['e2h.world:world_scale', 'e2h.world.generator:draw_arithmetic', 'e2h.world.generator:draw_modular'],
    'world.nest_p': ['e2h.world:world_scale', 'e2h.world.generator:_operand', 'e2h.world.generator:draw_arithmetic'],
    'world.corpus_per_level': ['e2h.world.corpus:corpus_problems'],
    'world.corpus_slip_share': ['e2h.world.corpus:check_author_shares'],
    'world.step_format': ['e2h.world:world_subjects', 'e2h.world:generate_world', 'e2h.world.corpus:corpus_problems'],
    'world.misconceptions': ['e2h.world:world_step_examples', 'e2h.world.corpus:check_author_shares'],
    'tokenizer.vocab_size': ['e2h.world.commands:build', 'policy.pretrain:build_base'],
    'tokenizer.path': ['e2h.commands.doctor:config_input_paths', 'e2h.commands.pipeline:with_base', 'e2h.world.commands:build'],
    'tokenizer.split_digits': ['e2h.world.commands:build', 'policy.pretrain:build_base'],
    'policy.path': ['e2h.commands.doctor:config_input_paths', 'e2h.commands.pipeline:stage_world', 'e2h.commands.pipeline:with_base'],
    'policy.hidden_size': ['e2h.world.tiny_models:llama_config'],
    'policy.intermediate_size': ['e2h.world.tiny_models:llama_config'],
    'policy.num_hidden_layers': ['e2h.world.tiny_models:llama_config'],
    'policy.num_attention_heads': ['e2h.world.tiny_models:llama_config'],
    'policy.num_key_value_heads': ['e2h.world.tiny_models:llama_config'],
    'policy.max_position_embeddings': ['e2h.world.tiny_models:llama_config', 'e2h.world.commands:build'],
    'prm_backbone.path': ['e2h.commands.doctor:config_input_paths', 'e2h.commands.pipeline:prm_start', 'e2h.commands.pipeline:stage_world'],
    'prm_backbone.hidden_size': ['e2h.world.tiny_models:llama_config'],
    'prm_backbone.intermediate_size': ['e2h.world.tiny_models:llama_config'],
    'prm_backbone.num_hidden_layers': ['e2h.world.tiny_models:llama_config'],
    'prm_backbone.num_attention_heads': ['e2h.world.tiny_models:llama_config'],
    'prm_backbone.num_key_value_heads': ['e2h.world.tiny_models:llama_config'],
    'prm_backbone.max_position_embeddings': ['e2h.world.tiny_models:llama_config', 'e2h.world.commands:build'],
    'prm.deepspeed_config': ['training:build_deepspeed_config'],
    'prm.lr': ['prm.train:_train_step'],
    'prm.min_lr_ratio': ['prm.train:_train_step'],
    'prm.weight_decay': ['training:build_deepspeed_config'],
    'prm.adam_betas': ['training:build_deepspeed_config'],
    'prm.adam_eps': ['training:build_deepspeed_config'],
    'prm.grad_clip': ['training:build_deepspeed_config'],
    'prm.micro_batch_size': ['training:batch_plan'],
    'prm.precision': ['training:resolve_precision'],
    'prm.checkpoint_every': ['prm.train:_train_loop'],
    'prm.freeze_embeddings_and_norms': ['prm.train:_build_model'],
    'prm.warmup_ratio': ['training:schedule'],
    'prm.epochs': ['training:schedule'],
    'prm.global_batch_size': ['prm.train:_start_engine', 'prm.train:_train_step'],
    'prm.max_length': ['prm.model_card:render_model_card', 'prm.train:_prepare_data'],
    'prm.kind': ['e2h.data.prepare:fingerprint', 'e2h.data.prepare:prepare', 'e2h.data.prepare:with_outcome_rows',
                 'e2h.commands.pipeline:prm_pool_rows'],
    'prm.label_positions': ['prm.train:_build_model', 'prm.train:_prepare_data'],
    'prm.likelihood_feature': ['prm.train:_build_model'],
    'prm.freeze_backbone': ['prm.train:_build_model'],
    'prm.output_dir': ['e2h.layout:RunLayout.prm_model'],
    'prm.data': ['e2h.layout:RunLayout.prm_data'],
    'prm.eval_size': ['prm.train:_prepare_data'],
    'prm.processbench_eval_size': ['prm.train:train_prm'],
    'prm.preflight_limit': ['prm.train:_prepare_data'],
    'prm.eval_every': ['prm.train:_train_loop'],
    'prm.lora_rank': ['prm.model_card:render_model_card', 'prm.train:_build_model', 'prm.train:train_prm'],
    'prm.lora_alpha': ['prm.train:_build_model'],
    'prm.lora_dropout': ['prm.train:_build_model'],
    'prm.lora_target_modules': ['prm.train:_build_model'],
    'prm.report_to': ['prm.train:train_prm'],
    'sft.deepspeed_config': ['training:build_deepspeed_config'],
    'sft.lr': ['training:build_deepspeed_config'],
    'sft.min_lr_ratio': ['training:create_engine', 'training:create_engine.make_scheduler'],
    'sft.weight_decay': ['training:build_deepspeed_config'],
    'sft.adam_betas': ['training:build_deepspeed_config'],
    'sft.adam_eps': ['training:build_deepspeed_config'],
    'sft.grad_clip': ['training:build_deepspeed_config'],
    'sft.micro_batch_size': ['training:batch_plan'],
    'sft.precision': ['training:resolve_precision'],
    'sft.checkpoint_every': ['policy.sft:run_sft'],
    'sft.freeze_embeddings_and_norms': ['policy.sft:run_sft'],
    'sft.warmup_ratio': ['training:schedule'],
    'sft.epochs': ['training:schedule'],
    'sft.global_batch_size': ['policy.sft:run_sft'],
    'sft.max_length': ['policy.sft:run_sft'],
    'sft.output_dir': ['e2h.layout:RunLayout.sft_model'],
    'sft.data': ['e2h.layout:RunLayout.sft_data'],
    'sft.init': ['policy.sft:sft_paths'],
    'sft.lora_rank': ['policy.sft:run_sft'],
    'sft.report_to': ['policy.sft:run_sft'],
    'pretrain.deepspeed_config': ['policy.pretrain:build_base*'],
    'pretrain.lr': ['policy.pretrain:build_base*'],
    'pretrain.min_lr_ratio': ['policy.pretrain:build_base*'],
    'pretrain.weight_decay': ['policy.pretrain:build_base*'],
    'pretrain.adam_betas': ['policy.pretrain:build_base*'],
    'pretrain.adam_eps': ['policy.pretrain:build_base*'],
    'pretrain.grad_clip': ['policy.pretrain:build_base*'],
    'pretrain.micro_batch_size': ['policy.pretrain:build_base*'],
    'pretrain.precision': ['policy.pretrain:build_base*'],
    'pretrain.checkpoint_every': ['policy.pretrain:build_base*'],
    'pretrain.freeze_embeddings_and_norms': ['policy.pretrain:build_base*'],
    'pretrain.warmup_ratio': ['policy.pretrain:build_base*'],
    'pretrain.epochs': ['policy.pretrain:build_base*'],
    'pretrain.global_batch_size': ['policy.pretrain:build_base*'],
    'pretrain.max_length': ['policy.pretrain:build_base*'],
    'pretrain.output_dir': ['policy.pretrain:build_base*'],
    'pretrain.report_to': ['policy.pretrain:build_base*'],
    'sample.n': ['policy.sample:generation_params'],
    'sample.temperature': ['policy.sample:generation_params'],
    'sample.top_p': ['policy.sample:generation_params'],
    'sample.top_k': ['policy.sample:generation_params'],
    'sample.max_tokens': ['policy.sample:generation_params'],
    'sample.seed': ['policy.sample:run_sampling'],
    'sample.shard_size': ['policy.sample:run_sampling'],
    'sample.num_actors': ['policy.sample:run_sampling'],
    'sample.gpus_per_actor': ['policy.sample_actors:run_on_actors'],
    'sample.tensor_parallel_size': ['policy.sample_actors:SamplerWorker.__init__', 'policy.sample_actors:run_on_actors', 'policy.vllm_engine:VLLMGenerator.from_config'],
    'sample.max_model_len': ['policy.vllm_engine:VLLMGenerator.from_config'],
    'sample.dtype': ['policy.hf_generator:HFGenerator.from_config', 'policy.vllm_engine:VLLMGenerator.from_config'],
    'sample.backend': ['policy.sample:run_sampling'],
    'sample.model': ['e2h.commands.doctor:config_input_paths', 'policy.sample:resolve_model'],
    'sample.prompts': ['e2h.commands.doctor:config_input_paths', 'e2h.commands.pipeline:stage_sample', 'e2h.layout:RunLayout.sample_prompts'],
    'sample.output_dir': ['e2h.layout:RunLayout.samples', 'policy.sample:run_sampling'],
    'sample.limit': ['policy.sample:run_sampling'],
    'sample.stop': ['policy.sample:generation_params'],
    'sample.cut_after_answer': ['policy.sample:run_sampling'],
    'sample.cpus_per_actor': ['policy.sample_actors:run_on_actors'],
    'sample.kv_cache_gib': ['policy.vllm_engine:VLLMGenerator.from_config'],
    'score.batch_tokens': ['prm.score:run'],
    'score.num_actors': ['prm.score:run'],
    'score.shard_size': ['prm.score:run'],
    'score.model': ['e2h.layout:RunLayout.score_model'],
    'score.samples': ['e2h.layout:RunLayout.score_samples'],
    'score.output_dir': ['e2h.layout:RunLayout.scored'],
    'score.share_prompt': ['prm.score:run'],
    'score.device': ['prm.processbench:run', 'prm.score:run'],
    'score.cpus_per_actor': ['prm.score:run'],
    'score.steps': ['e2h.commands.eval_command:evaluate', 'e2h.serve.commands:serve_settings', 'prm.score:run'],
    'eval.samples': ['e2h.commands.eval_command:default_samples_path', 'e2h.layout:RunLayout.eval_candidates'],
    'eval.output_dir': ['e2h.layout:RunLayout.eval_dir'],
    'eval.n_values': ['e2h.commands.eval_command:compute_metrics'],
    'eval.resamples': ['e2h.commands.eval_command:compute_metrics'],
    'eval.seed': ['e2h.commands.eval_command:compute_metrics'],
    'eval.interval': ['e2h.commands.eval_command:compute_metrics'],
    'eval.best_of_n_aggregation': ['e2h.commands.eval_command:build_methods', 'e2h.commands.eval_command:compute_metrics'],
    'eval.weighted_vote_aggregation': ['e2h.commands.eval_command:build_methods', 'e2h.commands.eval_command:compute_metrics'],
    'eval.aggregations': ['e2h.commands.eval_command:compute_metrics'],
    'eval.regrade': ['e2h.commands.eval_command:evaluate'],
    'eval.vote_grouping': ['e2h.commands.eval_command:compute_metrics'],
    'eval.grader_timeout_s': ['e2h.commands.eval_command:evaluate', 'policy.grpo:run_grpo', 'policy.ppo:_Validator.run', 'policy.ppo:_build_models'],
    'eval.grader_workers': ['e2h.commands.eval_command:evaluate'],
    'grading.numeric': ['e2h.config:GradingSection.options'],
    'grading.rel_tol': ['e2h.config:GradingSection.options'],
    'grading.mode': ['e2h.config:GradingSection.options'],
    'ppo.deepspeed_config': ['training:build_deepspeed_config'],
    'ppo.lr': ['policy.ppo:_build_models'],
    'ppo.min_lr_ratio': ['training:create_engine', 'training:create_engine.make_scheduler'],
    'ppo.weight_decay': ['training:build_deepspeed_config'],
    'ppo.adam_betas': ['training:build_deepspeed_config'],
    'ppo.adam_eps': ['training:build_deepspeed_config'],
    'ppo.grad_clip': ['training:build_deepspeed_config'],
    'ppo.micro_batch_size': ['training:batch_plan'],
    'ppo.precision': ['training:resolve_precision'],
    'ppo.checkpoint_every': ['policy.ppo:_train_loop'],
    'ppo.freeze_embeddings_and_norms': ['policy.ppo:_build_models'],
    'ppo.rollout_batch_size': ['policy.ppo:run_ppo'],
    'ppo.step_batch_size': ['policy.ppo:run_ppo'],
    'ppo.ppo_epochs': ['policy.ppo:_build_models', 'policy.ppo:_ppo_updates'],
    'ppo.temperature': ['policy.ppo:_advantages', 'policy.ppo:_ppo_updates', 'policy.ppo:_train_loop'],
    'ppo.top_k': ['policy.ppo:_train_loop'],
    'ppo.max_new_tokens': ['policy.ppo:max_response_tokens'],
    'ppo.kl_coef': ['policy.ppo:_advantages'],
    'ppo.clip_ratio': ['policy.ppo:_ppo_updates'],
    'ppo.value_clip': ['policy.ppo:_ppo_updates'],
    'ppo.vf_coef': ['policy.ppo:_ppo_updates'],
    'ppo.gamma': ['policy.ppo:_advantages'],
    'ppo.lam': ['policy.ppo:_advantages'],
    'ppo.whiten_rewards': ['policy.ppo:_advantages'],
    'ppo.whiten_padding': ['policy.ppo:_advantages'],
    'ppo.easy_only_answer_reward': ['policy.rewards:RewardSettings.from_config'],
    'ppo.unavailable_answer_reward': ['policy.rewards:RewardSettings.from_config'],
    'ppo.process_reward': ['policy.rewards:RewardSettings.from_config'],
    'ppo.process_reward_upper_bound': ['policy.rewards:RewardSettings.from_config'],
    'ppo.process_step_bonus': ['policy.rewards:RewardSettings.from_config'],
    'ppo.process_reward_scale': ['policy.rewards:RewardSettings.from_config'],
    'ppo.total_epochs': ['policy.ppo:ppo_schedule'],
    'ppo.total_steps': ['policy.ppo:ppo_schedule'],
    'ppo.validate_every': ['policy.ppo:_train_loop'],
    'ppo.format_penalty_value': ['policy.rewards:RewardSettings.from_config'],
    'ppo.relative_format_penalty': ['policy.rewards:RewardSettings.from_config'],
    'ppo.process_reward_placement': ['policy.ppo:_rollouts'],
    'ppo.prm_short_step_tokens': ['policy.rewards:RewardSettings.from_config'],
    'ppo.prm_short_step_logit': ['policy.rewards:RewardSettings.from_config'],
    'ppo.unwhitened_reward_scale': ['policy.ppo:_advantages'],
    'ppo.policy_path': ['e2h.layout:RunLayout.ppo_policy'],
    'ppo.prm_path': ['e2h.layout:RunLayout.ppo_prm'],
    'ppo.output_dir': ['e2h.layout:RunLayout.ppo'],
    'ppo.prompts': ['e2h.layout:RunLayout.ppo_prompts'],
    'ppo.validation_prompts': ['e2h.layout:RunLayout.ppo_validation_prompts'],
    'ppo.value_lr': ['policy.ppo:_build_models'],
    'ppo.warmup_ratio': ['policy.ppo:ppo_schedule'],
    'ppo.warmup_steps': ['policy.ppo:ppo_schedule'],
    'ppo.max_prompt_tokens': ['policy.ppo:_load_prompts', 'policy.ppo:max_response_tokens'],
    'ppo.rollout_backend': ['policy.ppo:rollout_generator'],
    'ppo.rollout_actors': ['policy.ppo:rollout_generator'],
    'ppo.rollout_cpus_per_actor': ['policy.ppo:rollout_generator'],
    'ppo.rollout_gpus_per_actor': ['policy.ppo:rollout_generator'],
    'ppo.max_model_len': ['policy.ppo:max_response_tokens', 'policy.ppo:rollout_generator'],
    'ppo.kv_cache_gib': ['policy.ppo:rollout_generator'],
    'ppo.forward_batch_size': ['policy.ppo:_advantages', 'policy.ppo:_build_models'],
    'ppo.validation_size': ['policy.ppo:_load_prompts'],
    'ppo.seed': ['policy.ppo:_build_models', 'policy.ppo:_ppo_updates', 'policy.ppo:_rollouts', 'policy.ppo:_train_loop', 'policy.ppo:rollout_generator'],
    'ppo.report_to': ['policy.ppo:run_ppo'],
    'grpo.lr': ['policy.grpo:trainer_args'],
    'grpo.num_generations': ['policy.grpo:trainer_args'],
    'grpo.batch_size': ['policy.grpo:trainer_args'],
    'grpo.gradient_accumulation_steps': ['policy.grpo:trainer_args'],
    'grpo.total_steps': ['policy.grpo:trainer_args'],
    'grpo.temperature': ['policy.grpo:trainer_args'],
    'grpo.max_new_tokens': ['policy.grpo:trainer_args'],
    'grpo.max_model_len': ['policy.grpo:trainer_args'],
    'grpo.kl_coef': ['policy.grpo:trainer_args'],
    'grpo.clip_ratio': ['policy.grpo:trainer_args'],
    'grpo.warmup_steps': ['policy.grpo:trainer_args'],
    'grpo.use_vllm': ['policy.grpo:trainer_args'],
    'grpo.gpu_memory_utilization': ['policy.grpo:trainer_args'],
    'grpo.deepspeed_config': ['policy.grpo:trainer_args'],
    'grpo.checkpoint_every': ['policy.grpo:trainer_args'],
    'grpo.log_every': ['policy.grpo:trainer_args'],
    'grpo.report_to': ['policy.grpo:trainer_args'],
    'grpo.policy_path': ['e2h.layout:RunLayout.grpo_policy'],
    'grpo.prm_path': ['e2h.layout:RunLayout.grpo_prm'],
    'grpo.prompts': ['e2h.layout:RunLayout.grpo_prompts'],
    'grpo.output_dir': ['e2h.layout:RunLayout.grpo'],
    'grpo.max_prompt_tokens': ['policy.grpo:run_grpo'],
    'grpo.forward_batch_size': ['policy.grpo:run_grpo'],
    'grpo.seed': ['policy.grpo:trainer_args'],
    'serve.host': ['e2h.serve.ray_serve:start', 'e2h.serve.server:uvicorn_config'],
    'serve.port': ['e2h.serve.ray_serve:start', 'e2h.serve.server:uvicorn_config'],
    'serve.prm_path': ['e2h.commands.doctor:config_input_paths', 'e2h.layout:RunLayout.serve_prm'],
    'serve.device': ['e2h.serve.ray_serve:build_application', 'e2h.serve.app:create_app'],
    'serve.max_batch_tokens': ['e2h.serve.batcher:DynamicBatcher.__init__', 'e2h.serve.batcher:DynamicBatcher._full', 'e2h.serve.batcher:DynamicBatcher._take_batch'],
    'serve.max_batch_size': ['e2h.serve.batcher:DynamicBatcher.__init__', 'e2h.serve.batcher:DynamicBatcher._full', 'e2h.serve.batcher:DynamicBatcher._take_batch'],
    'serve.max_wait_ms': ['e2h.serve.app:ServiceState.make_batcher'],
    'serve.max_solutions': ['e2h.serve.app:check_limits'],
    'serve.max_solution_chars': ['e2h.serve.app:check_limits'],
    'serve.max_problem_chars': ['e2h.serve.app:check_limits'],
    'serve.max_body_bytes': ['e2h.serve.app:create_app'],
    'serve.grader_timeout_s': ['e2h.serve.app:_rerank_request'],
    'serve.grader_threads': ['e2h.serve.app:ServiceState.__init__', 'e2h.serve.app:_rerank_request'],
    'serve.request_timeout_s': ['e2h.serve.server:request_timeout_protocol', 'e2h.serve.server:request_timeout_protocol.RequestTimeoutProtocol._start_arrival_timer', 'e2h.serve.server:request_timeout_protocol.RequestTimeoutProtocol._request_too_slow'],
    'serve.keep_alive_timeout_s': ['e2h.serve.server:uvicorn_config'],
    'serve.replicas': ['e2h.serve.commands:run'],
    'serve.steps': ['e2h.serve.commands:serve_settings', 'e2h.serve.app:_score_request'],
    'serve.cpus_per_replica': ['e2h.serve.ray_serve:build_application'],
    'demo.prm_pool_problems': ['e2h.commands.pipeline:pool_prompts'],
    'demo.prm_pool_samples': ['e2h.commands.pipeline:build_prm_pool'],
    'demo.prm_pool_temperature': ['e2h.commands.pipeline:build_prm_pool'],
    'demo.prm_init': ['e2h.commands.pipeline:prm_start', 'e2h.commands.pipeline:with_base'],
    'demo.policy_init': ['e2h.commands.pipeline:demo_config', 'e2h.commands.pipeline:demo_stages'],
    'demo.eval_split': ['e2h.commands.pipeline:checked_chain_rate', 'e2h.commands.pipeline:run', 'e2h.commands.pipeline:stage_sample'],
    'demo.base_model': ['e2h.commands.pipeline:stage_models', 'e2h.commands.pipeline:with_built_backbones'],
    'demo.rl_stages': ['e2h.commands.pipeline:demo_stages'],
}


def schema_keys() -> list[str]:
    """Every ``section.key`` of the run config."""
    return [f"{section}.{key}" for section, info in RunConfig.model_fields.items()
            for key in info.annotation.model_fields]


def _function_node(entry: str) -> ast.AST:
    module_name, _, qualname = entry.rstrip("*").partition(":")
    tree = ast.parse(inspect.getsource(importlib.import_module(module_name)))
    node: ast.AST = tree
    for part in qualname.split("."):
        found = [n for n in ast.walk(node) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                 and n.name == part and n is not node]
        if not found:
            raise LookupError(f"{entry}: no {part} in {module_name}")
        node = found[0]
    return node


def reads_key(entry: str, key: str) -> bool:
    """Whether the function ``entry`` reads ``section.key`` in its own code (see the module docstring)."""
    section, _, field = key.partition(".")
    node = _function_node(entry)
    if entry.endswith("*"):
        return any(isinstance(n, ast.Attribute) and n.attr == "model_dump" and isinstance(n.value, ast.Attribute)
                   and n.value.attr == section for n in ast.walk(node))
    return any((isinstance(n, ast.Attribute) and n.attr == field)
               or (isinstance(n, ast.Constant) and n.value == field) for n in ast.walk(node))


def hands_to_training(entry: str) -> bool:
    node = _function_node(entry)
    names = {"create_engine", "batch_plan", "schedule", "run_sft"}
    return any((isinstance(n, ast.Attribute) and n.attr in names) or (isinstance(n, ast.Name) and n.id in names)
               for n in ast.walk(node))


def problems() -> list[str]:
    """Everything wrong with :data:`READS` against the schema and the code; empty when every key is read."""
    out = []
    keys = schema_keys()
    for key in keys:
        if not READS.get(key):
            out.append(f"config key '{key}' is read by no code path listed in e2h.config_reads.READS")
    for key, entries in READS.items():
        if key not in keys:
            out.append(f"READS lists '{key}', which is not a config key")
            continue
        for entry in entries:
            try:
                ok = reads_key(entry, key)
            except (ImportError, LookupError, OSError) as err:
                out.append(f"READS['{key}']: {entry}: {err}")
                continue
            if not ok:
                out.append(f"READS['{key}']: {entry} does not read '{key.partition('.')[2]}'")
    for section, entry in TRAINERS.items():
        if not hands_to_training(entry):
            out.append(f"TRAINERS['{section}']: {entry} does not hand its section to the training package")
    return out
